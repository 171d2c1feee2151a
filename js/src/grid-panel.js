// @ts-check
// The Studio's "Grid" section: vary one or two parameters over lists of values, one image per combination.
// It sends {type: GRID, x: [param, values], y: [param, values] | null, params}; the kernel
// (qvac_nb/widgets/studio_grid.py) checks every cell, runs them one by one and adds the labelled grid.
import "./grid-panel.css";
import { shownUnder } from "./form.js";
import { GRID } from "./messages.js";
import { h } from "./util.js";

// What the panel offers, in this order (qvac_nb.grids allows these among others); each must be in the schema.
/**
 * The parameters the Grid offers as axes, in order: those the schema flags with `grid_axis` (schema.py's table).
 * @param {import("./types.js").SchemaParam[]} params
 * @returns {import("./types.js").SchemaParam[]}
 */
export function gridAxes(params) {
  return params.filter((p) => (p.grid_axis || 0) > 0).sort((a, b) => (a.grid_axis || 0) - (b.grid_axis || 0));
}
/** @type {import("./types.js").SchemaParam} */
export const PROMPT_SR = { name: "prompt_sr", label: "Prompt S/R", type: "text", doc: "each value replaces the first one in the prompt" };
const EXAMPLES = { seed: "1, 2, 3", cfg_scale: "4, 7, 10", guidance: "2.5, 3.5, 5", steps: "10, 20, 30", strength: "0.4, 0.6, 0.8", prompt_sr: "red, blue, green" };

/**
 * The comma-separated `text` as values of `param` (a schema parameter): {values} or {error}.
 * Integers (seed, steps) and floats (cfg_scale, strength) become numbers, choices must be one of the
 * schema's, anything else stays text. A whole number past 2^53 (a big seed) stays text: a JavaScript
 * number would round it, the kernel reads it exactly.
 * @param {unknown} text
 * @param {import("./types.js").SchemaParam} param
 * @returns {{values: (string | number)[], error?: undefined} | {error: string, values?: undefined}}
 */
export function parseValues(text, param) {
  const label = param.label || param.name;
  const items = String(text ?? "").split(",").map((item) => item.trim());
  if (items.every((item) => item === "")) return { error: `${label}: enter values separated by commas, e.g. ${EXAMPLES[param.name] || "a, b"}` };
  const values = [];
  for (const item of items) {
    if (item === "") return { error: `${label}: an empty value between commas` };
    if (param.type === "int") {
      if (!/^[+-]?\d+$/.test(item)) return { error: `${label}: '${item}' is not a whole number` };
      const n = Number(item);
      values.push(Number.isSafeInteger(n) ? n : item);
    } else if (param.type === "float") {
      const n = Number(item);
      if (!Number.isFinite(n)) return { error: `${label}: '${item}' is not a number` };
      values.push(n);
    } else if (param.type === "choice" && (param.choices || []).length && !param.choices.map(String).includes(item)) {
      return { error: `${label}: '${item}' is not one of ${param.choices.join(", ")}` };
    } else {
      values.push(item);
    }
  }
  return { values };
}

/** How many values `text` lists (for the cell count shown beside the button). @param {unknown} text */
function countValues(text) {
  return String(text ?? "").split(",").filter((item) => item.trim() !== "").length;
}

/**
 * model: the Studio's model (its `send` goes through the connection). collect(): the form's current
 * params, as the generate message sends them. The caller enables the button (setEnabled) like Generate.
 * @param {import("./types.js").StudioModel} model
 * @param {{collect: () => Record<string, any>}} options
 */
export function createGridPanel(model, { collect }) {
  const xParam = h("select", { name: "grid_x", "aria-label": "Grid X axis parameter" });
  const xValues = h("input", { type: "text", name: "grid_x_values", "aria-label": "Grid X values, comma separated" });
  const yParam = h("select", { name: "grid_y", "aria-label": "Grid Y axis parameter" });
  const yValues = h("input", { type: "text", name: "grid_y_values", "aria-label": "Grid Y values, comma separated", disabled: true });
  const button = h("button", { type: "button", class: "qvac-btn", name: "generate_grid", title: "one image per combination of the values" }, "Generate grid");
  const count = h("span", { class: "qvac-grid-count", "aria-live": "polite" });
  const message = h("div", { class: "qvac-grid-message", role: "alert", hidden: true });
  /** @param {string} text @param {HTMLElement} control */
  const field = (text, control) => h("label", { class: "qvac-field" }, h("span", { class: "qvac-field-label" }, text), control);
  const summary = h("summary", {}, "Grid");
  const el = h(
    "details",
    { class: "qvac-grid-box" },
    summary,
    h("div", { class: "qvac-row" }, field("X axis", xParam), h("label", { class: "qvac-field qvac-grid-values" }, h("span", { class: "qvac-field-label" }, "X values"), xValues)),
    h("div", { class: "qvac-row" }, field("Y axis", yParam), h("label", { class: "qvac-field qvac-grid-values" }, h("span", { class: "qvac-field-label" }, "Y values"), yValues)),
    message,
    h("div", { class: "qvac-row qvac-grid-actions" }, button, count),
  );
  /** @type {Map<string, import("./types.js").SchemaParam>} */
  let offered = new Map(); // name -> parameter (schema entry, or PROMPT_SR)

  /** The parameters a grid can vary for the current model: in the schema, shown by the form for its family. */
  function available() {
    const schema = model.get("schema") || {};
    const rules = model.get("form_rules") || {};
    const hasInit = Boolean((model.get("init_image") || {}).thumb);
    /** @type {Map<string, import("./types.js").SchemaParam>} */
    const out = new Map();
    for (const param of gridAxes(schema.params || [])) {
      if (!shownUnder(param.name, rules, hasInit)) continue;
      out.set(param.name, param);
    }
    out.set(PROMPT_SR.name, PROMPT_SR);
    return out;
  }

  /** @param {HTMLSelectElement} select @param {boolean} withNone */
  function fill(select, withNone) {
    const want = [...(withNone ? [["", "none"]] : []), ...[...offered.values()].map((p) => [p.name, p.label || p.name])];
    const have = [...select.options].map((o) => [o.value, o.textContent]);
    if (JSON.stringify(want) === JSON.stringify(have)) return;
    const value = select.value;
    select.replaceChildren(...want.map(([v, text]) => h("option", { value: v }, text)));
    select.value = want.some(([v]) => v === value) ? value : want[0][0];
  }

  /** @param {HTMLSelectElement} select @param {HTMLInputElement} input */
  function placeholder(select, input) {
    const param = offered.get(select.value);
    if (!param) return;
    const choices = (param.choices || []).filter((c) => c !== "" && c !== null);
    input.placeholder = EXAMPLES[param.name] || (choices.length ? choices.slice(0, 2).join(", ") : "a, b");
    input.title = param.doc || "";
  }

  function refresh() {
    yValues.disabled = !yParam.value;
    placeholder(xParam, xValues);
    placeholder(yParam, yValues);
    const cells = countValues(xValues.value) * (yParam.value ? countValues(yValues.value) : 1);
    count.textContent = cells ? `${cells} image${cells === 1 ? "" : "s"}` : "";
    summary.textContent = el.open || !countValues(xValues.value) ? "Grid" : `Grid (${xParam.value})`;
  }

  /** @param {string} text @param {HTMLInputElement | null} input the field it is about (null: none) */
  function showError(text, input) {
    message.textContent = text;
    message.hidden = !text;
    for (const control of [xValues, yValues]) control.removeAttribute("aria-invalid");
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  }

  /**
   * The axis the user entered, or null after saying what is wrong.
   * @param {HTMLSelectElement} select
   * @param {HTMLInputElement} input
   * @returns {[string, (string | number)[]] | null}
   */
  function axis(select, input) {
    const parsed = parseValues(input.value, offered.get(select.value));
    if (parsed.error) {
      showError(parsed.error, input);
      return null;
    }
    return [select.value, parsed.values];
  }

  function submit() {
    if (button.disabled) return;
    const x = axis(xParam, xValues);
    if (!x) return;
    let y = null;
    if (yParam.value) {
      if (yParam.value === xParam.value) {
        showError("Y axis: choose a parameter other than the X axis's", null);
        yParam.focus();
        return;
      }
      y = axis(yParam, yValues);
      if (!y) return;
    }
    showError("", null);
    model.send({ type: GRID, x, y, params: collect() });
  }

  button.addEventListener("click", submit);
  for (const input of [xValues, yValues]) {
    input.addEventListener("input", () => {
      if (input.getAttribute("aria-invalid")) showError("", null);
      refresh();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !(event.ctrlKey || event.metaKey || event.shiftKey || event.altKey)) {
        event.preventDefault();
        submit();
      }
    });
  }
  for (const select of [xParam, yParam]) {
    select.addEventListener("change", () => {
      showError("", null);
      refresh();
    });
  }
  el.addEventListener("toggle", refresh);

  /** Offer the parameters the current model (family, init image) can vary. */
  function render() {
    offered = available();
    fill(xParam, false);
    fill(yParam, true);
    refresh();
  }

  /**
   * Put a grid's axes back (a grid card's "All"): x and y are [param, "v1, v2, ..."] (y may be null). The section
   * opens to show them; an axis the current model cannot vary (its family, or strength without an init image)
   * is said, not dropped silently.
   * @param {[string, string] | null} x
   * @param {[string, string] | null} [y]
   */
  function setAxes(x, y) {
    render();
    const problems = [];
    /**
     * @param {string} name
     * @param {HTMLSelectElement} select
     * @param {HTMLInputElement} input
     * @param {[string, string] | null | undefined} axis
     */
    const put = (name, select, input, axis) => {
      if (!Array.isArray(axis)) {
        select.value = "";
        input.value = "";
        return;
      }
      const [param, text] = axis;
      if (!offered.has(param)) {
        problems.push(`${name} axis: this model (with its inputs) cannot vary '${param}'; the grid used ${param} = ${text}`);
        return;
      }
      select.value = param;
      input.value = text;
    };
    put("X", xParam, xValues, x);
    put("Y", yParam, yValues, y);
    el.open = true;
    showError(problems.join("; "), null);
    refresh();
  }

  /** Enabled like Generate: not while busy, without a model or with a dead kernel. @param {boolean} on */
  function setEnabled(on) {
    button.disabled = !on;
  }

  return { el, render, setEnabled, submit, setAxes };
}
