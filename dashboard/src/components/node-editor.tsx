import type { ReactNode } from 'react';
import type { JourneyDefinition, JourneyNode, JourneyProblem, TemplateList } from '../api/types.ts';
import { useI18n } from '../i18n/index.tsx';
import { fieldWithinNode } from '../journey-model.ts';

type Duration = { amount: number; unit: 'minutes' | 'hours' | 'days' | 'weeks' };
const UNITS = ['minutes', 'hours', 'days', 'weeks'] as const;
const CHANNELS = ['email', 'sms', 'wechat', 'wecom', 'push', 'webhook'] as const;

/** The problems of one field (and the fields under it), shown right under its control. */
export function FieldProblems({ problems, field }: { problems: JourneyProblem[]; field: string }) {
  const mine = problems.filter((problem) => {
    const within = fieldWithinNode(problem.field);
    return within === field || within.startsWith(`${field}.`);
  });
  if (!mine.length) return null;
  return (
    <ul className="field-problems" data-testid={`field-problem-${field}`}>
      {mine.map((problem, i) => (
        <li key={i} className="error-inline" role="alert">
          {problem.message}
        </li>
      ))}
    </ul>
  );
}

function Field({ label, children, problems, field }: { label: string; children: ReactNode; problems: JourneyProblem[]; field: string }) {
  return (
    <div className="node-field">
      <label>
        {label}
        {children}
      </label>
      <FieldProblems problems={problems} field={field} />
    </div>
  );
}

function DurationInput({ value, onChange, label, disabled }: { value: Duration; onChange(value: Duration): void; label: string; disabled: boolean }) {
  const { t } = useI18n();
  return (
    <span className="inline-fields">
      <input
        type="number"
        min={1}
        aria-label={`${label}: ${t('journeys.field.amount')}`}
        value={value.amount}
        disabled={disabled}
        onChange={(event) => onChange({ ...value, amount: Math.max(1, Number(event.target.value) || 1) })}
      />
      <select aria-label={`${label}: ${t('journeys.field.unit')}`} value={value.unit} disabled={disabled} onChange={(event) => onChange({ ...value, unit: event.target.value as Duration['unit'] })}>
        {UNITS.map((unit) => (
          <option key={unit} value={unit}>
            {t(`journeys.unit.${unit}`)}
          </option>
        ))}
      </select>
    </span>
  );
}

/** The side panel's form for one node: every property of its kind, each problem beside its field. */
export function NodeEditor(props: {
  node: JourneyNode;
  problems: JourneyProblem[];
  editable: boolean;
  templates: TemplateList | undefined;
  segmentKeys: string[];
  onChange(node: JourneyNode): void;
  onRemove(): void;
  onEditTemplate(key: string, channel: string): void;
}) {
  const { t } = useI18n();
  const { node, problems, editable, onChange } = props;
  const disabled = !editable;
  const text = (value: string, set: (value: string) => void, extra: { required?: boolean } = {}) => (
    <input value={value} disabled={disabled} required={extra.required} onChange={(event) => set(event.target.value)} />
  );

  let body: ReactNode = null;
  switch (node.kind) {
    case 'entry': {
      const trigger = node.trigger;
      body = (
        <>
          <Field label={t('journeys.field.trigger')} problems={problems} field="trigger">
            <select
              value={trigger.kind}
              disabled={disabled}
              onChange={(event) => {
                const kind = event.target.value;
                const segment = props.segmentKeys[0] ?? 'segment-key';
                const next =
                  kind === 'event'
                    ? { kind: 'event' as const, event: 'Order Completed' }
                    : kind === 'segment'
                      ? { kind: 'segment' as const, segment, on: 'entered' as const }
                      : kind === 'date'
                        ? { kind: 'date' as const, trait: 'birthday', time: '09:00', repeat: 'yearly' as const }
                        : kind === 'schedule'
                          ? { kind: 'schedule' as const, segment, cron: '0 9 * * 1' }
                          : { kind: 'api' as const };
                onChange({ ...node, trigger: next });
              }}
            >
              <option value="api">{t('journeys.trigger.api')}</option>
              <option value="event">{t('journeys.trigger.event')}</option>
              <option value="segment">{t('journeys.trigger.segment')}</option>
              <option value="date">{t('journeys.trigger.date')}</option>
              <option value="schedule">{t('journeys.trigger.schedule')}</option>
            </select>
          </Field>
          {trigger.kind === 'date' && (
            <>
              <Field label={t('journeys.field.dateTrait')} problems={problems} field="trigger.trait">
                {text(trigger.trait, (trait) => onChange({ ...node, trigger: { ...trigger, trait } }), { required: true })}
              </Field>
              <Field label={t('journeys.field.dateDays')} problems={problems} field="trigger.days">
                <input type="number" min={-366} max={366} value={trigger.days ?? 0} disabled={disabled} onChange={(event) => onChange({ ...node, trigger: { ...trigger, days: Number(event.target.value) || 0 } })} />
              </Field>
              <Field label={t('journeys.field.untilTime')} problems={problems} field="trigger.time">
                <input type="time" value={trigger.time} disabled={disabled} onChange={(event) => onChange({ ...node, trigger: { ...trigger, time: event.target.value } })} />
              </Field>
              <Field label={t('journeys.field.repeat')} problems={problems} field="trigger.repeat">
                <select value={trigger.repeat} disabled={disabled} onChange={(event) => onChange({ ...node, trigger: { ...trigger, repeat: event.target.value as 'yearly' | 'once' } })}>
                  <option value="yearly">{t('journeys.repeat.yearly')}</option>
                  <option value="once">{t('journeys.repeat.once')}</option>
                </select>
              </Field>
            </>
          )}
          {trigger.kind === 'schedule' && (
            <>
              <Field label={t('journeys.field.segment')} problems={problems} field="trigger.segment">
                <input list="journey-segment-keys" value={trigger.segment} disabled={disabled} onChange={(event) => onChange({ ...node, trigger: { ...trigger, segment: event.target.value } })} />
              </Field>
              <Field label={t('journeys.field.cron')} problems={problems} field="trigger.cron">
                {text(trigger.cron ?? '', (cron) => {
                  const { cron: _old, at: _at, ...rest } = trigger;
                  onChange({ ...node, trigger: cron ? { ...rest, cron } : rest });
                })}
              </Field>
            </>
          )}
          {trigger.kind === 'event' && (
            <>
              <Field label={t('journeys.field.event')} problems={problems} field="trigger.event">
                {text(trigger.event, (event) => onChange({ ...node, trigger: { ...trigger, event } }), { required: true })}
              </Field>
              <Field label={t('journeys.field.where')} problems={problems} field="trigger.where">
                {text(trigger.where ?? '', (where) => {
                  const { where: _old, ...rest } = trigger;
                  onChange({ ...node, trigger: where ? { ...rest, where } : rest });
                })}
              </Field>
            </>
          )}
          {trigger.kind === 'segment' && (
            <>
              <Field label={t('journeys.field.segment')} problems={problems} field="trigger.segment">
                <input list="journey-segment-keys" value={trigger.segment} disabled={disabled} onChange={(event) => onChange({ ...node, trigger: { ...trigger, segment: event.target.value } })} />
                <datalist id="journey-segment-keys">
                  {props.segmentKeys.map((key) => (
                    <option key={key} value={key} />
                  ))}
                </datalist>
              </Field>
              <Field label={t('journeys.field.on')} problems={problems} field="trigger.on">
                <select value={trigger.on ?? 'entered'} disabled={disabled} onChange={(event) => onChange({ ...node, trigger: { ...trigger, on: event.target.value as 'entered' | 'exited' } })}>
                  <option value="entered">{t('journeys.on.entered')}</option>
                  <option value="exited">{t('journeys.on.exited')}</option>
                </select>
              </Field>
            </>
          )}
          <Field label={t('journeys.field.reentry')} problems={problems} field="reentry">
            <select
              value={node.reentry?.mode ?? 'once'}
              disabled={disabled}
              onChange={(event) => {
                const mode = event.target.value;
                onChange({ ...node, reentry: mode === 'after' ? { mode: 'after', days: 30 } : { mode: mode as 'once' | 'always' } });
              }}
            >
              <option value="once">{t('journeys.reentry.once')}</option>
              <option value="after">{t('journeys.reentry.after')}</option>
              <option value="always">{t('journeys.reentry.always')}</option>
            </select>
          </Field>
          {node.reentry?.mode === 'after' && (
            <Field label={t('journeys.field.reentryDays')} problems={problems} field="reentry.days">
              <input type="number" min={1} value={node.reentry.days} disabled={disabled} onChange={(event) => onChange({ ...node, reentry: { mode: 'after', days: Math.max(1, Number(event.target.value) || 1) } })} />
            </Field>
          )}
          <Field label={t('journeys.field.holdout')} problems={problems} field="holdoutPercent">
            <input
              type="number"
              min={0}
              max={99}
              value={node.holdoutPercent ?? 0}
              disabled={disabled}
              onChange={(event) => {
                const value = Math.min(99, Math.max(0, Number(event.target.value) || 0));
                const { holdoutPercent: _old, ...rest } = node;
                onChange(value ? { ...rest, holdoutPercent: value } : rest);
              }}
            />
          </Field>
          <Field label={t('journeys.field.cap')} problems={problems} field="cap">
            <input
              type="number"
              min={1}
              value={node.cap ?? ''}
              disabled={disabled}
              onChange={(event) => {
                const { cap: _old, ...rest } = node;
                const value = Number(event.target.value);
                onChange(value >= 1 ? { ...rest, cap: value } : rest);
              }}
            />
          </Field>
        </>
      );
      break;
    }
    case 'delay': {
      const weekdays = node.until?.weekdays ?? [];
      body = (
        <>
          <div className="node-field">
            <label className="checkbox">
              <input
                type="checkbox"
                checked={node.duration !== undefined}
                disabled={disabled}
                onChange={(event) => {
                  const { duration: _old, ...rest } = node;
                  onChange(event.target.checked ? { ...rest, duration: { amount: 1, unit: 'days' } } : rest);
                }}
              />
              {t('journeys.field.waitFor')}
            </label>
            {node.duration && <DurationInput label={t('journeys.field.waitFor')} value={node.duration} disabled={disabled} onChange={(duration) => onChange({ ...node, duration })} />}
            <FieldProblems problems={problems} field="duration" />
          </div>
          <div className="node-field">
            <label className="checkbox">
              <input
                type="checkbox"
                checked={node.until !== undefined}
                disabled={disabled}
                onChange={(event) => {
                  const { until: _old, ...rest } = node;
                  onChange(event.target.checked ? { ...rest, until: { time: '09:00' } } : rest);
                }}
              />
              {t('journeys.field.until')}
            </label>
            {node.until && (
              <>
                <input
                  type="time"
                  aria-label={t('journeys.field.untilTime')}
                  value={node.until.time}
                  disabled={disabled}
                  onChange={(event) => onChange({ ...node, until: { ...node.until!, time: event.target.value } })}
                />
                <fieldset className="weekdays">
                  <legend>{t('journeys.field.weekdays')}</legend>
                  {[1, 2, 3, 4, 5, 6, 7].map((day) => (
                    <label key={day} className="checkbox">
                      <input
                        type="checkbox"
                        checked={weekdays.includes(day)}
                        disabled={disabled}
                        onChange={(event) => {
                          const next = event.target.checked ? [...weekdays, day].sort() : weekdays.filter((d) => d !== day);
                          const { weekdays: _old, ...until } = node.until!;
                          onChange({ ...node, until: next.length ? { ...until, weekdays: next } : until });
                        }}
                      />
                      {t(`journeys.weekday.${day}` as 'journeys.weekday.1')}
                    </label>
                  ))}
                </fieldset>
              </>
            )}
            <FieldProblems problems={problems} field="until" />
          </div>
        </>
      );
      break;
    }
    case 'wait':
      body = (
        <>
          <Field label={t('journeys.field.event')} problems={problems} field="event">
            {text(node.event, (event) => onChange({ ...node, event }), { required: true })}
          </Field>
          <Field label={t('journeys.field.where')} problems={problems} field="where">
            {text(node.where ?? '', (where) => {
              const { where: _old, ...rest } = node;
              onChange(where ? { ...rest, where } : rest);
            })}
          </Field>
          <div className="node-field">
            <span className="field-label">{t('journeys.field.timeout')}</span>
            <DurationInput label={t('journeys.field.timeout')} value={node.timeout} disabled={disabled} onChange={(timeout) => onChange({ ...node, timeout })} />
            <FieldProblems problems={problems} field="timeout" />
          </div>
        </>
      );
      break;
    case 'segment_wait':
      body = (
        <>
          <Field label={t('journeys.field.segment')} problems={problems} field="segment">
            <input list="journey-segment-keys" value={node.segment} disabled={disabled} onChange={(event) => onChange({ ...node, segment: event.target.value })} />
            <datalist id="journey-segment-keys">
              {props.segmentKeys.map((key) => (
                <option key={key} value={key} />
              ))}
            </datalist>
          </Field>
          <Field label={t('journeys.field.on')} problems={problems} field="on">
            <select value={node.on} disabled={disabled} onChange={(event) => onChange({ ...node, on: event.target.value as 'entered' | 'exited' })}>
              <option value="entered">{t('journeys.on.entered')}</option>
              <option value="exited">{t('journeys.on.exited')}</option>
            </select>
          </Field>
          <div className="node-field">
            <span className="field-label">{t('journeys.field.timeout')}</span>
            <DurationInput label={t('journeys.field.timeout')} value={node.timeout} disabled={disabled} onChange={(timeout) => onChange({ ...node, timeout })} />
            <FieldProblems problems={problems} field="timeout" />
          </div>
        </>
      );
      break;
    case 'update_trait':
      body = (
        <>
          <Field label={t('journeys.field.setTraits')} problems={problems} field="set">
            <textarea
              rows={3}
              defaultValue={JSON.stringify(node.set ?? {}, null, 1)}
              disabled={disabled}
              onChange={(event) => {
                try {
                  const set = JSON.parse(event.target.value || '{}') as Record<string, string | number | boolean | null>;
                  const { set: _old, ...rest } = node;
                  onChange(Object.keys(set).length ? { ...rest, set } : rest);
                } catch {
                  // Not JSON yet: keep what was there until it parses.
                }
              }}
            />
          </Field>
          <Field label={t('journeys.field.addTags')} problems={problems} field="addTags">
            {text((node.addTags ?? []).join(', '), (value) => {
              const tags = value.split(',').map((tag) => tag.trim()).filter(Boolean);
              const { addTags: _old, ...rest } = node;
              onChange(tags.length ? { ...rest, addTags: tags } : rest);
            })}
          </Field>
        </>
      );
      break;
    case 'webhook':
      body = (
        <>
          <Field label={t('journeys.field.channelConfigKey')} problems={problems} field="channelConfigKey">
            {text(node.channelConfigKey, (channelConfigKey) => onChange({ ...node, channelConfigKey }), { required: true })}
          </Field>
          <Field label={t('journeys.field.template')} problems={problems} field="template">
            {text(node.template, (template) => onChange({ ...node, template }), { required: true })}
          </Field>
          <button type="button" onClick={() => props.onEditTemplate(node.template, 'webhook')}>
            {t('journeys.editTemplate')}
          </button>
        </>
      );
      break;
    case 'split':
      body = (
        <Field label={t('journeys.field.condition')} problems={problems} field="condition">
          <textarea rows={3} value={node.condition} disabled={disabled} onChange={(event) => onChange({ ...node, condition: event.target.value })} />
        </Field>
      );
      break;
    case 'random': {
      const total = node.branches.reduce((sum, branch) => sum + branch.percent, 0);
      body = (
        <fieldset className="branches">
          <legend>{t('journeys.field.branches', { total })}</legend>
          {node.branches.map((branch, i) => (
            <div key={i} className="inline-fields">
              <input
                aria-label={t('journeys.field.branchKey', { n: i + 1 })}
                value={branch.key}
                disabled={disabled}
                onChange={(event) => onChange({ ...node, branches: node.branches.map((b, j) => (j === i ? { ...b, key: event.target.value } : b)) })}
              />
              <input
                type="number"
                min={1}
                max={100}
                aria-label={t('journeys.field.branchPercent', { n: i + 1 })}
                value={branch.percent}
                disabled={disabled}
                onChange={(event) => onChange({ ...node, branches: node.branches.map((b, j) => (j === i ? { ...b, percent: Math.max(1, Number(event.target.value) || 1) } : b)) })}
              />
              {editable && node.branches.length > 2 && (
                <button type="button" className="link" onClick={() => onChange({ ...node, branches: node.branches.filter((_, j) => j !== i) })}>
                  {t('journeys.removeBranch', { key: branch.key })}
                </button>
              )}
            </div>
          ))}
          {editable && node.branches.length < 10 && (
            <button type="button" onClick={() => onChange({ ...node, branches: [...node.branches, { key: `v${node.branches.length + 1}`, percent: 1, next: '_unconnected' }] })}>
              {t('journeys.addBranch')}
            </button>
          )}
          <FieldProblems problems={problems} field="branches" />
        </fieldset>
      );
      break;
    }
    case 'send':
      body = (
        <>
          <Field label={t('journeys.field.channel')} problems={problems} field="channel">
            <select value={node.channel} disabled={disabled} onChange={(event) => onChange({ ...node, channel: event.target.value as (typeof CHANNELS)[number] })}>
              {CHANNELS.map((channel) => (
                <option key={channel} value={channel}>
                  {channel}
                </option>
              ))}
            </select>
          </Field>
          <Field label={t('journeys.field.template')} problems={problems} field="template">
            <input list="journey-template-keys" value={node.template} disabled={disabled} onChange={(event) => onChange({ ...node, template: event.target.value })} />
            <datalist id="journey-template-keys">
              {(props.templates?.items ?? []).map((template) => (
                <option key={template.key} value={template.key}>
                  {`${template.name} (${template.channel})`}
                </option>
              ))}
            </datalist>
          </Field>
          <button type="button" onClick={() => props.onEditTemplate(node.template, node.channel)}>
            {t('journeys.editTemplate')}
          </button>
          <Field label={t('journeys.field.purpose')} problems={problems} field="purpose">
            <select value={node.purpose} disabled={disabled} onChange={(event) => onChange({ ...node, purpose: event.target.value as 'marketing' | 'transactional' })}>
              <option value="marketing">{t('journeys.purpose.marketing')}</option>
              <option value="transactional">{t('journeys.purpose.transactional')}</option>
            </select>
          </Field>
          <Field label={t('journeys.field.subscriptionGroup')} problems={problems} field="subscriptionGroup">
            {text(node.subscriptionGroup ?? '', (value) => {
              const { subscriptionGroup: _old, ...rest } = node;
              onChange(value ? { ...rest, subscriptionGroup: value } : rest);
            })}
          </Field>
          <Field label={t('journeys.field.channelConfigKey')} problems={problems} field="channelConfigKey">
            {text(node.channelConfigKey ?? '', (value) => {
              const { channelConfigKey: _old, ...rest } = node;
              onChange(value ? { ...rest, channelConfigKey: value } : rest);
            })}
          </Field>
        </>
      );
      break;
    case 'end':
      body = <p className="help">{t('journeys.endHelp')}</p>;
      break;
  }

  return (
    <section className="node-editor" aria-label={t('journeys.nodePanel', { id: node.id })} data-testid="node-editor">
      <h2>
        {t(`journeys.kind.${node.kind}`)} <code>{node.id}</code>
      </h2>
      <Field label={t('journeys.field.id')} problems={problems} field="id">
        <input
          value={node.id}
          disabled={disabled}
          pattern="[A-Za-z0-9_.\-]+"
          onChange={(event) => event.target.value && /^[A-Za-z0-9_.-]+$/.test(event.target.value) && onChange({ ...node, id: event.target.value })}
        />
      </Field>
      {body}
      <FieldProblems problems={problems} field="" />
      {(['next', 'yes', 'no', 'happened', 'timedOut'] as const).map((field) => (
        <FieldProblems key={field} problems={problems} field={field} />
      ))}
      {editable && node.kind !== 'entry' && (
        <button type="button" className="link" onClick={props.onRemove}>
          {t('journeys.removeNode')}
        </button>
      )}
    </section>
  );
}

/** Goals (convert) and exits (leave) of the whole journey, each a segment-language condition. */
export function RulesEditor(props: { definition: JourneyDefinition; problems: JourneyProblem[]; editable: boolean; onChange(definition: JourneyDefinition): void }) {
  const { t } = useI18n();
  const { definition, problems, editable } = props;
  const section = (kind: 'goals' | 'exits') => {
    const rules = definition[kind] ?? [];
    const set = (next: typeof rules) => {
      const { [kind]: _old, ...rest } = definition;
      props.onChange(next.length ? { ...rest, [kind]: next } : rest);
    };
    return (
      <fieldset className="rules" data-testid={`rules-${kind}`}>
        <legend>{t(kind === 'goals' ? 'journeys.goals' : 'journeys.exits')}</legend>
        <p className="help">{t(kind === 'goals' ? 'journeys.goalsHelp' : 'journeys.exitsHelp')}</p>
        {rules.map((rule, i) => (
          <div key={i} className="rule">
            <label>
              {t('journeys.field.id')}
              <input value={rule.id} disabled={!editable} onChange={(event) => set(rules.map((r, j) => (j === i ? { ...r, id: event.target.value } : r)))} />
            </label>
            <label>
              {t('journeys.field.condition')}
              <textarea rows={2} value={rule.condition} disabled={!editable} onChange={(event) => set(rules.map((r, j) => (j === i ? { ...r, condition: event.target.value } : r)))} />
            </label>
            {problems
              .filter((problem) => problem.field.startsWith(`${kind}.${i}.`))
              .map((problem, k) => (
                <p key={k} className="error-inline" role="alert">
                  {problem.message}
                </p>
              ))}
            {editable && (
              <button type="button" className="link" onClick={() => set(rules.filter((_, j) => j !== i))}>
                {t('journeys.removeRule', { id: rule.id })}
              </button>
            )}
          </div>
        ))}
        {editable && (
          <button
            type="button"
            onClick={() => set([...rules, { id: `${kind === 'goals' ? 'goal' : 'exit'}-${rules.length + 1}`, condition: kind === 'goals' ? 'event("Order Completed").exists()' : 'event("Unsubscribed").exists()' }])}
          >
            {t(kind === 'goals' ? 'journeys.addGoal' : 'journeys.addExit')}
          </button>
        )}
      </fieldset>
    );
  };
  return (
    <section className="node-editor" aria-label={t('journeys.rules')}>
      <h2>{t('journeys.rules')}</h2>
      {section('goals')}
      {section('exits')}
    </section>
  );
}
