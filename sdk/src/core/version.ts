export const LIBRARY_NAME = 'touchpoint-sdk';
export const LIBRARY_VERSION = '0.1.0';
