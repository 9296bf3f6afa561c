/** Small DOM helpers: sections with a run state, labelled controls, and error display. */
import { exclusive } from './backend.js';

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> & { dataset?: Record<string, string> } = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  const { dataset, ...rest } = props;
  Object.assign(e, rest);
  if (dataset) Object.assign(e.dataset, dataset);
  e.append(...children);
  return e;
}

/** A titled section of the page; `data-state` is idle, busy, done or error (the tests wait on it). */
export function section(id: string, title: string, intro: string): HTMLElement {
  const s = el(
    'section',
    { id, dataset: { state: 'idle' } },
    el('h2', { textContent: title }),
    el('p', { className: 'intro', innerHTML: intro }),
  );
  document.getElementById('app')!.append(s);
  return s;
}

/** A row of controls. */
export function row(parent: HTMLElement, ...children: (Node | string)[]): HTMLElement {
  const r = el('div', { className: 'row' }, ...children);
  parent.append(r);
  return r;
}

export function labelled(text: string, control: HTMLElement): HTMLLabelElement {
  return el('label', {}, `${text} `, control);
}

export function select(
  id: string,
  options: readonly (string | [string, string])[],
  value?: string,
): HTMLSelectElement {
  const s = el('select', { id });
  for (const o of options) {
    const [v, t] = typeof o === 'string' ? [o, o] : o;
    s.append(el('option', { value: v, textContent: t }));
  }
  if (value !== undefined) s.value = value;
  return s;
}

export function range(
  id: string,
  min: number,
  max: number,
  step: number,
  value: number,
): HTMLInputElement {
  return el('input', {
    id,
    type: 'range',
    min: String(min),
    max: String(max),
    step: String(step),
    value: String(value),
  });
}

export function number(id: string, min: number, max: number, value: number): HTMLInputElement {
  return el('input', {
    id,
    type: 'number',
    min: String(min),
    max: String(max),
    value: String(value),
    className: 'num',
  });
}

export function button(id: string, text: string): HTMLButtonElement {
  return el('button', { id, textContent: text });
}

/**
 * Runs `job` in the page's single tensor lane with the section's state shown: busy while it runs,
 * then done, or error with the message displayed in the section.
 */
export async function act(s: HTMLElement, job: () => Promise<void>): Promise<void> {
  s.dataset.state = 'busy';
  let err = s.querySelector<HTMLElement>(':scope > .error');
  if (!err) {
    err = el('div', { className: 'error' });
    s.append(err);
  }
  err.textContent = '';
  try {
    await exclusive(job);
    s.dataset.state = 'done';
  } catch (e) {
    console.error(e);
    err.textContent = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    s.dataset.state = 'error';
  }
}

/** Lets the browser paint between animation frames. */
export function nextFrame(): Promise<void> {
  return new Promise((ok) => requestAnimationFrame(() => ok()));
}
