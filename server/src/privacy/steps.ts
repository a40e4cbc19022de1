/**
 * Every module's personal-data steps, imported for their registration. A module that stores data
 * about a person (journey state, messages, model scores, decisions...) adds one import here of a
 * file calling registerPersonalData; the erasure residue test (privacy-erasure.test.ts) fails
 * while any table still holds an erased person's identifiers.
 */
import './core-steps.ts';
import '../journeys/personal-data.ts';
import '../channels/personal-data.ts';
import '../decisioning/personal-data.ts';
