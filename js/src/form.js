// @ts-check
// The Studio's controls, built from the `schema` trait (qvac_nb.schema.schema_json): one control per
// parameter, with the schema's labels, docs, limits and choice lists; nothing about a parameter is
// spelled out here except the few special controls (seed, size presets, upscale).
// Edits are written back to the `params` trait on change; values the kernel sets are put into the fields.
// Which fields show comes from the `form_rules` trait, which the kernel derives from the model's row of
// the family table (qvac_nb/widgets/family_form.py); the kernel also moves the values to a new model's
// defaults, so nothing here knows a model family.
import { h } from "./util.js";

/** @typedef {import("./types.js").SchemaParam} SchemaParam */
/** @typedef {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} Input */

/**
 * One control of the form: its parameter, the field that shows (label and input), its input, and how to read
 * and write its value. The seed has its random switch, dice button and roll(); a select fill(), which puts the
 * schema's choices in; a checkbox its label `text`.
 * @typedef {object} Control
 * @property {SchemaParam} param
 * @property {HTMLElement} field
 * @property {Input} input
 * @property {() => any} read
 * @property {(value: any) => void} write
 * @property {(modelDefault: string) => void} [fill]
 * @property {HTMLInputElement} [random]
 * @property {HTMLButtonElement} [dice]
 * @property {() => string} [roll]
 * @property {HTMLElement} [text]
 */

// Special controls: sizes have presets (the `size_presets` trait); upscaling needs a paired upscaler;
// the seed has its random toggle and dice.
export const SIZE = ["width", "height"];
const UPSCALE = "upscale";
const UPSCALE_REPEATS = "upscale_repeats";
const RANDOM_SEED = "random_seed";
const GROUPS = ["prompt", "basic", "advanced"];
const SKIPPED = new Set(["hidden", "image"]); // hidden: not in the Studio; image: the init image's own control

/**
 * Round to the nearest multiple of `multiple` within [min, max]; non-numbers are left for the kernel to reject.
 * @template V
 * @param {V} value
 * @param {{multiple?: number, min?: number | null, max?: number | null}} [limits]
 * @returns {V | number}
 */
export function snap(value, { multiple = 1, min = null, max = null } = {}) {
  const n = Number(value);
  if (!Number.isFinite(n) || String(value).trim() === "") return value;
  let out = Math.round(n / multiple) * multiple;
  if (min !== null && min !== undefined && out < min) out = Math.ceil(min / multiple) * multiple;
  if (max !== null && max !== undefined && out > max) out = Math.floor(max / multiple) * multiple;
  return out;
}

/**
 * The family's entry in the schema ({} when unknown or no model).
 * @param {import("./types.js").Schema | null | undefined} schema
 * @param {string | null | undefined} family
 * @returns {import("./types.js").FamilyInfo}
 */
export function familyInfo(schema, family) {
  return (family && schema && schema.families && schema.families[family]) || {};
}

/**
 * Whether a parameter applies to a model family: not in its `hidden` list, and its `families` include it.
 * @param {SchemaParam} param
 * @param {string | null | undefined} family
 * @param {import("./types.js").FamilyInfo} info
 */
export function appliesTo(param, family, info) {
  if (family && param.families && !param.families.includes(family)) return false;
  return !(info.hidden || []).includes(param.name);
}

/**
 * Whether the form shows a field under the kernel's form rules ({hidden, init_params, ...}): not hidden
 * for the model's family, and a parameter of the init image only once one is set.
 * @param {string} name
 * @param {{hidden?: string[], init_params?: string[]}} rules
 * @param {boolean} hasInit
 */
export function shownUnder(name, rules, hasInit) {
  if ((rules.hidden || []).includes(name)) return false;
  return hasInit || !(rules.init_params || []).includes(name);
}

/**
 * A parameter's default for the current model: its own (model_info.defaults), else the schema's.
 * @param {import("./types.js").ModelInfo | null | undefined} info
 * @param {SchemaParam} param
 */
export function modelDefault(info, param) {
  const defaults = (info && info.defaults) || {};
  return param.name in defaults ? defaults[param.name] : param.default;
}

/** @param {string} text @param {SchemaParam} param */
function parseNumber(text, param) {
  const trimmed = String(text).trim();
  if (trimmed === "") return param.nullable ? null : trimmed;
  const n = Number(trimmed);
  return Number.isNaN(n) ? trimmed : n;
}

/** @param {unknown} value @param {unknown} text */
function option(value, text) {
  return h("option", { value: String(value) }, String(text));
}

/**
 * One control for a schema parameter: {param, field, input, read(), write(v), extras}.
 * @param {SchemaParam} param
 * @param {{placeholder?: string}} [options] the textarea's placeholder
 * @returns {Control}
 */
function makeControl(param, { placeholder } = {}) {
  const name = param.name;
  const title = param.doc || undefined;
  const limits = { min: param.min ?? undefined, max: param.max ?? undefined, step: param.step ?? undefined };
  const numeric = param.type === "int" || param.type === "float";
  /** @param {HTMLElement} control */
  const labelled = (control, cls = "") =>
    h("label", { class: `qvac-field ${cls}`.trim(), title, "data-param": name }, h("span", { class: "qvac-field-label" }, param.label || name), control);
  /** @type {(input: Input, field: HTMLElement, read?: () => any) => Control} */
  const plain = (input, field, read) => ({
    param,
    field,
    input,
    read: read || (() => (numeric ? parseNumber(input.value, param) : input.value)),
    write(value) {
      if (input.ownerDocument.activeElement === input) return; // never fight the user's typing
      if (String(input.value) !== String(value ?? "")) input.value = value ?? "";
    },
  });

  switch (param.control) {
    case "textarea": {
      const input = h("textarea", { name, rows: param.group === "prompt" && !placeholder ? 2 : 3, placeholder: placeholder || param.label });
      return plain(input, labelled(input, "qvac-wide"));
    }
    case "slider": {
      const input = h("input", { type: "range", name, ...limits });
      const shown = h("span", { class: "qvac-range-value" });
      const decimals = String(param.step ?? "").split(".")[1]?.length ?? 0;
      const show = () => {
        shown.textContent = Number(input.value).toFixed(decimals);
      };
      input.addEventListener("input", show);
      const ctl = plain(input, labelled(h("span", { class: "qvac-range" }, input, shown)), () => Number(input.value));
      const write = ctl.write;
      ctl.write = (value) => {
        write(value);
        show();
      };
      return ctl;
    }
    case "select": {
      const input = h("select", { name });
      const ctl = plain(input, labelled(input), () => {
        if (input.value === "") return "";
        return numeric ? Number(input.value) : input.value;
      });
      /** Options from the schema's choices; a nullable parameter gets an empty "default" option. */
      ctl.fill = (modelDefault) => {
        const want = [
          ...(param.nullable ? [["", modelDefault ? `default (${modelDefault})` : "default"]] : []),
          ...(param.choices || []).map((c) => [String(c), String(c)]),
        ];
        const have = [...input.options].map((o) => [o.value, o.textContent]);
        if (JSON.stringify(want) === JSON.stringify(have)) return;
        const value = input.value;
        input.replaceChildren(...want.map(([v, text]) => option(v, text)));
        input.value = value;
      };
      ctl.fill("");
      return ctl;
    }
    case "checkbox": {
      const input = h("input", { type: "checkbox", name });
      const text = h("span", { class: "qvac-field-label" }, param.label || name);
      const field = h("label", { class: "qvac-check", title, "data-param": name }, input, text);
      return {
        param,
        field,
        input,
        text,
        read: () => input.checked,
        write(value) {
          input.checked = Boolean(value);
        },
      };
    }
    case "seed": {
      const input = h("input", { type: "text", inputmode: "numeric", name, class: "qvac-seed" });
      const random = h("input", { type: "checkbox", name: RANDOM_SEED });
      // Words, not a dice emoji: where no emoji font is installed that showed as an empty box.
      const dice = h("button", { type: "button", class: "qvac-btn qvac-small", name: "dice_seed", title: "a new random seed, kept fixed", "aria-label": "new random seed" }, "New");
      const field = h(
        "div",
        { class: "qvac-row qvac-seed-row", "data-param": name },
        labelled(input),
        h("label", { class: "qvac-check", title: "a new seed for every run" }, random, "random"),
        dice,
      );
      const ctl = plain(input, field, () => String(input.value).trim() || String(param.default ?? ""));
      ctl.random = random;
      ctl.dice = dice;
      /** A seed drawn within the schema's limits (non-negative: negative seeds mean "random"). */
      ctl.roll = () => {
        const lo = Math.max(0, param.min ?? 0);
        const hi = Math.min(param.max ?? 2 ** 32 - 1, Number.MAX_SAFE_INTEGER);
        return String(lo + Math.floor(Math.random() * (hi - lo + 1)));
      };
      return ctl;
    }
    case "text":
      break;
    default:
      if (numeric) {
        const input = h("input", { type: "number", name, ...limits });
        return plain(input, labelled(input));
      }
  }
  const input = h("input", { type: "text", name });
  return plain(input, labelled(input));
}

/**
 * The form; `controls()` maps each parameter's name to its control.
 * @param {import("./types.js").StudioModel} model
 */
export function createForm(model) {
  const el = h("div", { class: "qvac-form" });
  /** @type {Map<string, Control>} */
  let controls = new Map(); // name -> control
  let builtFrom = null; // the schema (and size presets) the controls were built from
  let builtPresets = null;
  /** @type {HTMLSelectElement | null} */
  let sizeSelect = null;

  /** @type {import("./types.js").Schema} */
  const EMPTY = { params: [], families: {} };
  const schema = () => model.get("schema") || EMPTY;
  const stale = () => builtFrom !== schema() || builtPresets !== model.get("size_presets");

  function build() {
    const s = schema();
    builtFrom = s;
    builtPresets = model.get("size_presets");
    controls = new Map();
    const groups = Object.fromEntries(GROUPS.map((g) => [g, []]));
    let firstText = true;
    for (const param of s.params || []) {
      if (SKIPPED.has(param.control)) continue;
      const placeholder = param.control === "textarea" && firstText ? `${param.label || param.name} — Ctrl/Cmd+Enter generates` : undefined;
      if (param.control === "textarea") firstText = false;
      const ctl = makeControl(param, { placeholder });
      controls.set(param.name, ctl);
      (groups[param.group] || groups.basic).push(ctl.field);
    }
    const presets = model.get("size_presets") || [];
    sizeSelect = null;
    if (presets.length && SIZE.every((n) => controls.has(n))) {
      sizeSelect = h("select", { name: "size" }, option("", "custom"), presets.map(([w, hgt]) => option(`${w}x${hgt}`, `${w}×${hgt}`)));
      const sizeField = h("label", { class: "qvac-field", "data-param": "size" }, h("span", { class: "qvac-field-label" }, "Size"), sizeSelect);
      groups.basic.splice(groups.basic.indexOf(controls.get(SIZE[0]).field), 0, sizeField);
      sizeSelect.addEventListener("change", () => {
        if (!sizeSelect.value) return;
        sizeSelect.value.split("x").forEach((v, i) => (controls.get(SIZE[i]).input.value = v));
        commit();
        render();
      });
    }
    const advanced = h("details", { class: "qvac-advanced" }, h("summary", {}, "Advanced"), h("div", { class: "qvac-row" }, groups.advanced));
    el.replaceChildren(...groups.prompt, h("div", { class: "qvac-row qvac-basic" }, groups.basic), ...(groups.advanced.length ? [advanced] : []));
    for (const [name, ctl] of controls) {
      ctl.input.addEventListener("change", () => {
        if (SIZE.includes(name)) ctl.input.value = String(snap(ctl.input.value, sizeLimits(ctl.param)));
        commit();
        render();
      });
      if (ctl.random) ctl.random.addEventListener("change", () => {
        commit();
        render();
      });
      if (ctl.dice) ctl.dice.addEventListener("click", () => {
        ctl.input.value = ctl.roll();
        ctl.random.checked = false;
        commit();
        render();
      });
    }
  }

  /** Sizes snap to the model family's size step (form_rules.size_multiple), else the schema's step. @param {SchemaParam} param */
  function sizeLimits(param) {
    const multiple = (model.get("form_rules") || {}).size_multiple || param.step || 1;
    return { multiple, min: param.min, max: param.max };
  }

  /** The form's current values as the `params` trait expects them. */
  function collect() {
    if (stale()) render();
    const out = { ...(model.get("params") || {}) };
    for (const [name, ctl] of controls) {
      out[name] = ctl.read();
      if (ctl.random) out[RANDOM_SEED] = ctl.random.checked;
    }
    return out;
  }

  /** Put the kernel's state into the fields. */
  function render() {
    if (stale()) build();
    const info = (model.get("current_model") && model.get("model_info")) || {};
    const rules = model.get("form_rules") || {};
    const hasInit = Boolean((model.get("init_image") || {}).thumb);
    const p = model.get("params") || {};
    const modelDefaults = info.engine_defaults || [];
    for (const [name, ctl] of controls) {
      if (ctl.fill) ctl.fill(modelDefaults.find((d) => (ctl.param.choices || []).map(String).includes(d)) || "");
      if (name in p) ctl.write(p[name]);
      // An empty nullable field means "the default": show which one the model gets.
      if (ctl.param.nullable && ctl.input.type === "number") {
        /** @type {HTMLInputElement} */ (ctl.input).placeholder = String(modelDefault(info, ctl.param) ?? "");
      }
      ctl.field.hidden = !shownUnder(name, rules, hasInit);
      if (SIZE.includes(name)) /** @type {HTMLInputElement} */ (ctl.input).step = String(sizeLimits(ctl.param).multiple);
      if (ctl.random) {
        ctl.random.checked = Boolean(p[RANDOM_SEED]);
        ctl.input.disabled = ctl.random.checked;
      }
    }
    if (sizeSelect) {
      const [w, hgt] = SIZE.map((n) => Number(p[n]));
      const preset = `${w}x${hgt}`;
      sizeSelect.value = [...sizeSelect.options].some((o) => o.value === preset) ? preset : "";
    }
    const upscale = controls.get(UPSCALE);
    if (upscale) {
      const can = Boolean(info.has_upscaler);
      upscale.input.disabled = !can;
      upscale.field.classList.add("qvac-upscale");
      upscale.field.title = "run the model's paired upscaler on each image";
      upscale.text.textContent = can ? `${upscale.param.label} ×${info.upscale_factor}` : `${upscale.param.label} (no upscaler)`;
      const repeats = controls.get(UPSCALE_REPEATS);
      if (repeats) repeats.input.disabled = !can || !(/** @type {HTMLInputElement} */ (upscale.input).checked);
    }
  }

  function commit() {
    model.set("params", collect());
    model.save_changes();
  }

  /** A control's element, to be placed by a special control elsewhere (the init image takes strength). @param {string} name */
  function take(name) {
    if (stale()) render();
    return controls.get(name) || null;
  }

  return { el, controls: () => controls, collect, render, commit, take };
}

/** @typedef {ReturnType<typeof createForm>} Form */
