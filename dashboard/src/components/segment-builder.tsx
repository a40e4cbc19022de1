import type { Condition } from '../segment-builder-model.ts';
import {
  COUNT_OPS,
  TRAIT_OPS,
  appendTo,
  editable,
  eventCount,
  isGroup,
  newEvent,
  newGroup,
  newTrait,
  replaceAt,
  toggleNot,
  traitOperator,
  traitValueText,
  withEventMatch,
  type Path,
  type TraitOp,
} from '../segment-builder-model.ts';
import { useI18n, type MessageKey } from '../i18n/index.tsx';

interface Props {
  root: Extract<Condition, { kind: 'and' | 'or' }>;
  onChange(root: Extract<Condition, { kind: 'and' | 'or' }>): void;
}

/** The visual form of a segment: groups (and/or), negation, trait and event conditions, segments, consent. */
export function SegmentBuilder({ root, onChange }: Props) {
  const update = (path: Path, replacement: Condition | null) => onChange(replaceAt(root, path, replacement) as Props['root']);
  const append = (path: Path, child: Condition) => onChange(appendTo(root, path, child) as Props['root']);
  return (
    <div className="builder" data-testid="segment-builder">
      <Group node={root} path={[]} update={update} append={append} depth={0} />
    </div>
  );
}

type Update = (path: Path, replacement: Condition | null) => void;
type Append = (path: Path, child: Condition) => void;

function Group({ node, path, update, append, depth }: { node: Extract<Condition, { kind: 'and' | 'or' }>; path: Path; update: Update; append: Append; depth: number }) {
  const { t } = useI18n();
  return (
    <fieldset className={`builder-group depth-${depth % 3}`}>
      <legend>
        <label className="inline">
          <span className="visually-hidden">{t('builder.combine')}</span>
          <select aria-label={t('builder.combine')} value={node.kind} onChange={(event) => update(path, { ...node, kind: event.target.value as 'and' | 'or' })}>
            <option value="and">{t('builder.all')}</option>
            <option value="or">{t('builder.any')}</option>
          </select>
        </label>
        {path.length > 0 && (
          <button type="button" className="icon" aria-label={t('builder.remove')} onClick={() => update(path, null)}>
            ×
          </button>
        )}
      </legend>
      {node.conditions.length === 0 && <p className="help">{t('builder.emptyGroup')}</p>}
      {node.conditions.map((child, index) => (
        <Row key={index} node={child} path={[...path, index]} update={update} append={append} depth={depth} />
      ))}
      <div className="builder-add">
        <button type="button" onClick={() => append(path, newTrait())}>
          + {t('builder.trait')}
        </button>
        <button type="button" onClick={() => append(path, newEvent())}>
          + {t('builder.event')}
        </button>
        <button type="button" onClick={() => append(path, { kind: 'segment', segment: '' })}>
          + {t('builder.segment')}
        </button>
        <button type="button" onClick={() => append(path, { kind: 'consent', category: 'sms' })}>
          + {t('builder.consent')}
        </button>
        <button type="button" onClick={() => append(path, newGroup(node.kind === 'and' ? 'or' : 'and'))}>
          + {t('builder.group')}
        </button>
      </div>
    </fieldset>
  );
}

function Row({ node, path, update, append, depth }: { node: Condition; path: Path; update: Update; append: Append; depth: number }) {
  const { t } = useI18n();
  const negated = node.kind === 'not';
  const inner = negated ? node.condition : node;
  const innerPath: Path = negated ? [...path, 'not'] : path;
  if (isGroup(inner) && !negated) return <Group node={inner} path={path} update={update} append={append} depth={depth + 1} />;
  return (
    <div className="builder-row">
      <label className="inline not-toggle">
        <input type="checkbox" checked={negated} onChange={() => update(path, toggleNot(node))} />
        {t('builder.not')}
      </label>
      {isGroup(inner) ? (
        <Group node={inner} path={innerPath} update={update} append={append} depth={depth + 1} />
      ) : (
        <Leaf node={inner} path={innerPath} update={update} />
      )}
      <button type="button" className="icon" aria-label={t('builder.remove')} onClick={() => update(path, null)}>
        ×
      </button>
    </div>
  );
}

function Leaf({ node, path, update }: { node: Condition; path: Path; update: Update }) {
  const { t } = useI18n();
  if (!editable(node)) {
    return (
      <span className="builder-fixed" title={t('builder.textOnly')}>
        {t('builder.textOnly')}: <code>{node.kind}</code>
      </span>
    );
  }
  if (node.kind === 'trait') {
    const op = node.op as TraitOp;
    const needsValue = op !== 'exists' && op !== 'missing';
    return (
      <span className="builder-fields">
        <input aria-label={t('builder.traitKey')} value={node.trait} onChange={(event) => update(path, { ...node, trait: event.target.value })} />
        <select aria-label={t('builder.operator')} value={op} onChange={(event) => update(path, { kind: 'trait', trait: node.trait, ...traitOperator(event.target.value as TraitOp, traitValueText(node)) })}>
          {TRAIT_OPS.map((value) => (
            <option key={value} value={value}>
              {t(`builder.op.${value}` as MessageKey)}
            </option>
          ))}
        </select>
        {needsValue && (
          <input
            aria-label={t('common.value')}
            value={traitValueText(node)}
            onChange={(event) => update(path, { kind: 'trait', trait: node.trait, ...traitOperator(op, event.target.value) })}
          />
        )}
      </span>
    );
  }
  if (node.kind === 'event') {
    const count = eventCount(node);
    const days = node.window?.kind === 'last' ? node.window.duration : undefined;
    return (
      <span className="builder-fields">
        <select aria-label={t('common.type')} value={node.match.type} onChange={(event) => update(path, withEventMatch(node, { type: event.target.value as 'track' | 'page' | 'screen' }))}>
          <option value="track">track</option>
          <option value="page">page</option>
          <option value="screen">screen</option>
        </select>
        <input aria-label={t('builder.eventName')} value={node.match.name ?? ''} onChange={(event) => update(path, withEventMatch(node, { name: event.target.value || undefined }))} />
        <select
          aria-label={t('builder.measure')}
          value={count ? count.op : 'exists'}
          onChange={(event) =>
            update(path, {
              ...node,
              measure: event.target.value === 'exists' ? { kind: 'exists' } : { kind: 'count', test: { op: event.target.value as (typeof COUNT_OPS)[number], value: count?.value ?? 1 } },
            })
          }
        >
          <option value="exists">{t('builder.happened')}</option>
          {COUNT_OPS.map((value) => (
            <option key={value} value={value}>
              {t('builder.count')} {t(`builder.op.${value}` as MessageKey)}
            </option>
          ))}
        </select>
        {count && (
          <input
            aria-label={t('builder.times')}
            type="number"
            min={0}
            className="narrow"
            value={count.value}
            onChange={(event) => update(path, { ...node, measure: { kind: 'count', test: { op: count.op as (typeof COUNT_OPS)[number], value: Number(event.target.value) || 0 } } })}
          />
        )}
        <label className="inline">
          {t('builder.within')}
          <input
            aria-label={t('builder.withinDays')}
            type="number"
            min={0}
            className="narrow"
            value={days?.unit === 'days' ? days.amount : days ? '' : 0}
            onChange={(event) => {
              const amount = Number(event.target.value);
              const { window: _window, ...rest } = node;
              update(path, amount > 0 ? { ...rest, window: { kind: 'last', duration: { amount, unit: 'days' } } } : rest);
            }}
          />
          {t('builder.days')}
        </label>
      </span>
    );
  }
  if (node.kind === 'segment') {
    return (
      <span className="builder-fields">
        {t('builder.inSegment')}
        <input aria-label={t('builder.segment')} value={node.segment} onChange={(event) => update(path, { kind: 'segment', segment: event.target.value })} />
      </span>
    );
  }
  if (node.kind === 'consent') {
    return (
      <span className="builder-fields">
        {t('builder.consentTo')}
        <input aria-label={t('builder.consent')} value={node.category} onChange={(event) => update(path, { kind: 'consent', category: event.target.value })} />
      </span>
    );
  }
  return null;
}
