import { h } from './dom.ts';

// A searchable class picker (ARIA combobox + listbox): type to filter the model's class names,
// arrow keys to move, Enter or a click to choose, Escape to close. 1000 ImageNet names stay quick
// because at most MAX_SHOWN options are in the DOM at once.

const MAX_SHOWN = 50;

export interface ClassOption {
  index: number;
  name: string;
}

export class ClassPicker {
  private options: ClassOption[] = [];
  private shown: ClassOption[] = [];
  private active = -1;
  private chosen: ClassOption | null = null;
  /** The last class chosen, which Escape goes back to after typing. */
  private committed: ClassOption | null = null;

  private readonly input: HTMLInputElement;
  private readonly list: HTMLUListElement;
  private readonly changed: () => void;

  constructor(input: HTMLInputElement, list: HTMLUListElement, changed: () => void = () => undefined) {
    this.input = input;
    this.list = list;
    this.changed = changed;
    input.addEventListener('input', () => {
      this.chosen = null;
      this.open(input.value);
    });
    input.addEventListener('focus', () => input.select());
    input.addEventListener('keydown', (event) => this.key(event));
    input.addEventListener('blur', () => {
      // A click on an option lands after blur; give it the chance to choose first.
      setTimeout(() => {
        this.close();
        if (this.chosen) input.value = this.chosen.name;
      }, 150);
    });
    list.addEventListener('mousedown', (event) => event.preventDefault());
    list.addEventListener('click', (event) => {
      const item = (event.target as HTMLElement).closest('li');
      const option = item ? this.shown[Number(item.dataset['position'])] : undefined;
      if (option) this.choose(option);
    });
  }

  setOptions(options: ClassOption[], initial: number): void {
    this.options = options;
    const first = options.find((o) => o.index === initial) ?? options[0];
    if (first) this.choose(first, false);
  }

  /** The chosen class index, or the typed text when nothing was chosen (the API then says why). */
  value(): number | string {
    if (this.chosen) return this.chosen.index;
    const typed = this.input.value.trim();
    const exact = this.options.find((o) => o.name.toLowerCase() === typed.toLowerCase());
    return exact ? exact.index : typed;
  }

  private matches(query: string): ClassOption[] {
    const q = query.trim().toLowerCase();
    if (q === '') return this.options;
    const starts = this.options.filter((o) => o.name.toLowerCase().startsWith(q));
    const contains = this.options.filter((o) => !o.name.toLowerCase().startsWith(q) && (o.name.toLowerCase().includes(q) || String(o.index) === q));
    return [...starts, ...contains];
  }

  private open(query: string): void {
    const found = this.matches(query);
    this.shown = found.slice(0, MAX_SHOWN);
    this.active = this.shown.length > 0 ? 0 : -1;
    const items = this.shown.map((o, i) => h('li', { id: `class-option-${i}`, role: 'option', 'data-position': i, 'aria-selected': i === this.active ? 'true' : 'false' }, o.name));
    if (found.length > MAX_SHOWN) items.push(h('li', { class: 'more', 'aria-disabled': 'true' }, `${found.length - MAX_SHOWN} more: keep typing`));
    if (found.length === 0) items.push(h('li', { class: 'more', 'aria-disabled': 'true' }, 'No class matches'));
    this.list.replaceChildren(...items);
    this.list.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
    this.highlight();
  }

  private close(): void {
    this.list.hidden = true;
    this.input.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
  }

  private highlight(): void {
    this.list.querySelectorAll('li[role=option]').forEach((li, i) => li.setAttribute('aria-selected', i === this.active ? 'true' : 'false'));
    if (this.active >= 0) {
      this.input.setAttribute('aria-activedescendant', `class-option-${this.active}`);
      this.list.querySelector(`#class-option-${this.active}`)?.scrollIntoView({ block: 'nearest' });
    } else {
      this.input.removeAttribute('aria-activedescendant');
    }
  }

  private choose(option: ClassOption, notify = true): void {
    this.chosen = option;
    this.committed = option;
    this.input.value = option.name;
    this.close();
    if (notify) this.changed();
  }

  private key(event: KeyboardEvent): void {
    const isOpen = !this.list.hidden;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      if (!isOpen) return this.open(this.chosen ? '' : this.input.value);
      if (this.shown.length === 0) return;
      const step = event.key === 'ArrowDown' ? 1 : -1;
      this.active = (this.active + step + this.shown.length) % this.shown.length;
      this.highlight();
    } else if (event.key === 'Enter' && isOpen) {
      event.preventDefault();
      const option = this.shown[this.active];
      if (option) this.choose(option);
    } else if (event.key === 'Escape' && isOpen) {
      event.preventDefault();
      if (this.committed) this.choose(this.committed, false);
      else this.close();
    }
  }
}
