import type { ModelInfo, Problem } from '@pixelflow/schemas';
import type { FormRequest } from './api.ts';
import { ClassPicker, type ClassOption } from './class-picker.ts';
import { byId, h } from './dom.ts';

// The demo's controls: class, Dopri5, noise shift, CFG, one steps slider per stage, seed, number of
// images. The form checks nothing itself beyond what the widgets enforce: the API validates and its
// messages are shown next to the field they name, so the page and every other client agree.

const DEFAULT_CFG = 4;
const DEFAULT_STEPS = 10;
/** The original demo opens on this class when the model has it. */
const DEMO_CLASS = 'daisy';

export class GenerationForm {
  readonly form = byId<HTMLFormElement>('generate-form');
  private readonly fieldset = byId<HTMLFieldSetElement>('controls');
  private readonly dopri5 = byId<HTMLInputElement>('dopri5');
  private readonly shift = byId<HTMLInputElement>('noise-shift');
  private readonly cfg = byId<HTMLInputElement>('cfg');
  private readonly seed = byId<HTMLInputElement>('seed');
  private readonly numImages = byId<HTMLInputElement>('num-images');
  private readonly stepsBox = byId('steps-sliders');
  private readonly formError = byId('form-error');
  private readonly picker = new ClassPicker(byId<HTMLInputElement>('class-input'), byId<HTMLUListElement>('class-options'), () => this.clearError('class'));
  private stepInputs: HTMLInputElement[] = [];

  constructor() {
    for (const [input, output] of [
      [this.shift, byId<HTMLOutputElement>('noise-shift-value')],
      [this.cfg, byId<HTMLOutputElement>('cfg-value')],
    ] as const) {
      const show = (): void => void (output.value = Number(input.value).toFixed(input === this.cfg ? 1 : 0));
      input.addEventListener('input', show);
      show();
    }
    this.dopri5.addEventListener('change', () => this.solverChanged());
    byId('random-seed').addEventListener('click', () => {
      this.seed.value = String(crypto.getRandomValues(new Uint32Array(1))[0] ?? 0);
      this.clearError('seed');
    });
    // An edited field's old message no longer applies.
    this.form.addEventListener('input', (event) => {
      const field = (event.target as HTMLElement).closest('.field')?.querySelector<HTMLElement>('[data-error-for]')?.dataset['errorFor'];
      if (field) this.clearError(field);
    });
  }

  /** Fills the controls from the model: its classes, its stages, the demo's defaults. */
  setModel(model: ModelInfo, classes: ClassOption[]): void {
    const demo = classes.find((c) => c.name.toLowerCase() === DEMO_CLASS);
    this.picker.setOptions(classes, demo?.index ?? model.defaults.class_label);
    this.cfg.value = String(DEFAULT_CFG);
    this.cfg.dispatchEvent(new Event('input'));
    this.numImages.value = String(model.defaults.num_images);
    this.stepInputs = model.stages.map((stage) => {
      const id = `steps-${stage.index}`;
      const input = h('input', { id, type: 'range', min: 1, max: 100, step: 1, value: DEFAULT_STEPS, 'data-stage': stage.index });
      const output = h('output', { for: id }, String(DEFAULT_STEPS));
      input.addEventListener('input', () => void (output.value = input.value));
      this.stepsBox.append(h('div', { class: 'stage-steps' }, h('label', { for: id }, `Stage ${stage.index + 1} (${stage.resolution}×${stage.resolution}) `, output), input));
      return input;
    });
    this.solverChanged();
  }

  setEnabled(enabled: boolean): void {
    this.fieldset.disabled = !enabled;
  }

  request(): FormRequest {
    const euler = !this.dopri5.checked;
    const request: FormRequest = {
      class: this.picker.value(),
      num_images: numberOrText(this.numImages.value),
      cfg_scale: Number(this.cfg.value),
      solver: euler ? 'euler' : 'dopri5',
    };
    if (euler) {
      request.noise_shift = Number(this.shift.value);
      request.steps = this.stepInputs.map((input) => Number(input.value));
    }
    const seed = this.seed.value.trim();
    if (seed !== '') request.seed = numberOrText(seed);
    return request;
  }

  /** The API's validation problem, each message next to its field (`steps[2]` -> the steps field). */
  showProblem(problem: Problem): void {
    this.clearErrors();
    const unplaced: string[] = [];
    for (const error of problem.errors ?? []) {
      const field = error.path.split(/[.[]/)[0] ?? '';
      const slot = this.form.querySelector<HTMLElement>(`[data-error-for="${CSS.escape(field)}"]`);
      if (!slot) {
        unplaced.push(`${error.path} ${error.message}`);
        continue;
      }
      slot.textContent = slot.textContent ? `${slot.textContent}; ${error.path} ${error.message}` : `${error.path} ${error.message}`;
      slot.closest('.field')?.querySelectorAll('input').forEach((input) => input.setAttribute('aria-invalid', 'true'));
    }
    if (unplaced.length > 0 || (problem.errors ?? []).length === 0) this.formError.textContent = unplaced.length > 0 ? unplaced.join('; ') : problem.detail;
    this.form.querySelector<HTMLInputElement>('[aria-invalid=true]')?.focus();
  }

  showError(message: string): void {
    this.clearErrors();
    this.formError.textContent = message;
  }

  clearErrors(): void {
    this.form.querySelectorAll<HTMLElement>('[data-error-for]').forEach((slot) => this.clearError(slot.dataset['errorFor'] ?? ''));
    this.formError.textContent = '';
  }

  private clearError(field: string): void {
    const slot = this.form.querySelector<HTMLElement>(`[data-error-for="${CSS.escape(field)}"]`);
    if (!slot) return;
    slot.textContent = '';
    slot.closest('.field')?.querySelectorAll('input').forEach((input) => input.removeAttribute('aria-invalid'));
  }

  private solverChanged(): void {
    const euler = !this.dopri5.checked;
    this.shift.disabled = !euler;
    for (const input of this.stepInputs) input.disabled = !euler;
  }
}

/** Numbers go as numbers; anything else as typed, so the API's message names the problem. */
function numberOrText(text: string): number | string {
  const trimmed = text.trim();
  const value = Number(trimmed);
  return trimmed !== '' && Number.isFinite(value) ? value : trimmed;
}
