import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { gridAxes, parseValues } from "../src/grid-panel.js";
import { describeStatus } from "../src/progress.js";
import { entryCaption, entryDetails } from "../src/gallery-grid.js";
import SCHEMA from "./fixtures/schema.json";
import { entry, fakeImage } from "./mock-model.js";
import { SD1, rulesOf, setup } from "./studio-setup.js";

const byName = (name) => SCHEMA.params.find((p) => p.name === name);

describe("gridAxes", () => {
  it("offers what the schema flags, in the flagged order", () => {
    expect(gridAxes(SCHEMA.params).map((p) => p.name)).toEqual(["seed", "cfg_scale", "guidance", "steps", "sampling_method", "scheduler", "strength"]);
    const more = [...SCHEMA.params, { name: "eta", type: "float", grid_axis: 8 }];
    expect(gridAxes(more).map((p) => p.name).at(-1)).toBe("eta");
    expect(gridAxes(SCHEMA.params.map((p) => ({ ...p, grid_axis: 0 })))).toEqual([]);
  });
});

describe("parseValues", () => {
  it("parses integers, floats, choices and text", () => {
    expect(parseValues(" 1, 2 ,3", byName("seed"))).toEqual({ values: [1, 2, 3] });
    expect(parseValues("10, 20", byName("steps"))).toEqual({ values: [10, 20] });
    expect(parseValues("4, 7.5, 1e1", byName("cfg_scale"))).toEqual({ values: [4, 7.5, 10] });
    expect(parseValues("euler, euler_a", byName("sampling_method"))).toEqual({ values: ["euler", "euler_a"] });
    expect(parseValues("red, dark blue", { name: "prompt_sr", type: "text" })).toEqual({ values: ["red", "dark blue"] });
  });

  it("keeps a seed past 2^53 as text rather than rounding it", () => {
    expect(parseValues("1, 9007199254740993", byName("seed"))).toEqual({ values: [1, "9007199254740993"] });
  });

  it("names the parameter and the value it cannot parse", () => {
    expect(parseValues("4, seven", byName("cfg_scale")).error).toBe(`${byName("cfg_scale").label}: 'seven' is not a number`);
    expect(parseValues("10, 2.5", byName("steps")).error).toContain("'2.5' is not a whole number");
    expect(parseValues("1,,2", byName("seed")).error).toContain("empty value");
    expect(parseValues("  ", byName("seed")).error).toContain("enter values");
    expect(parseValues("eulr", byName("sampling_method")).error).toContain("'eulr' is not one of euler");
  });
});

describe("Studio grid panel", () => {
  let ctx;
  beforeEach(() => {
    ctx = setup();
  });
  afterEach(() => {
    ctx.cleanup();
    ctx.el.remove();
  });

  it("renders a collapsible Grid section with labelled axis controls", () => {
    const { $ } = ctx;
    const box = $("details.qvac-grid-box");
    expect(box).not.toBeNull();
    expect(box.querySelector("summary").textContent).toBe("Grid");
    const xOptions = [...$("select[name=grid_x]").options].map((o) => o.value);
    // SD 1.x: cfg, not guidance; strength only once there is an init image.
    expect(xOptions).toEqual(["seed", "cfg_scale", "steps", "sampling_method", "scheduler", "prompt_sr"]);
    expect([...$("select[name=grid_y]").options][0].value).toBe("");
    expect($("select[name=grid_y]").value).toBe("");
    expect($("input[name=grid_y_values]").disabled).toBe(true);
    for (const name of ["grid_x", "grid_x_values", "grid_y", "grid_y_values"]) {
      const control = $(`[name=${name}]`);
      expect(control.getAttribute("aria-label") || control.closest("label")).toBeTruthy();
      expect(control.closest("label").textContent).toMatch(/[XY] (axis|values)/);
    }
    expect($("button[name=generate_grid]").textContent).toBe("Generate grid");
  });

  it("offers guidance for FLUX and strength with an init image", () => {
    const { $, model } = ctx;
    model.update("model_info", { ...SD1, family: "flux", uses_guidance: true });
    model.update("form_rules", rulesOf("distilled"));
    let options = [...$("select[name=grid_x]").options].map((o) => o.value);
    expect(options).toContain("guidance");
    expect(options).not.toContain("cfg_scale");
    model.update("model_info", SD1);
    model.update("form_rules", rulesOf("sdedit"));
    model.update("init_image", { name: "cat.png", thumb: fakeImage(), width: 64, height: 64 });
    options = [...$("select[name=grid_x]").options].map((o) => o.value);
    expect(options).toContain("strength");
  });

  it("sends the axes as numbers or text with the form's params", () => {
    const { $, model, type } = ctx;
    $("textarea[name=prompt]").value = "a green boat";
    type("grid_x", "cfg_scale");
    type("grid_x_values", "4, 7.5, 10");
    type("grid_y", "sampling_method");
    expect($("input[name=grid_y_values]").disabled).toBe(false);
    type("grid_y_values", "euler, euler_a");
    expect($(".qvac-grid-count").textContent).toBe("6 images");
    $("button[name=generate_grid]").click();
    const sent = model.sentOfType("grid");
    expect(sent).toHaveLength(1);
    const { content } = sent[0];
    expect(content.x).toEqual(["cfg_scale", [4, 7.5, 10]]);
    expect(content.y).toEqual(["sampling_method", ["euler", "euler_a"]]);
    expect(content.params.prompt).toBe("a green boat");
    expect(content.params.steps).toBe(4);
    expect(content.params.random_seed).toBe(true);
    expect(model.get("params").prompt).toBe("a green boat"); // written back like Generate does
    expect(model.sentOfType("generate")).toHaveLength(0);
  });

  it("sends y as null without a Y axis, and Enter in a values box submits", () => {
    const { $, model, type } = ctx;
    type("grid_x", "seed");
    type("grid_x_values", "1, 2");
    $("input[name=grid_x_values]").dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    const [{ content }] = model.sentOfType("grid");
    expect(content.x).toEqual(["seed", [1, 2]]);
    expect(content.y).toBeNull();
    type("grid_x", "prompt_sr");
    type("grid_x_values", "red, blue");
    $("button[name=generate_grid]").click();
    expect(model.sentOfType("grid")[1].content.x).toEqual(["prompt_sr", ["red", "blue"]]);
  });

  it("shows a validation message for a bad value and sends nothing", () => {
    const { $, model, type } = ctx;
    type("grid_x", "steps");
    type("grid_x_values", "10, twenty");
    $("button[name=generate_grid]").click();
    expect(model.sentOfType("grid")).toHaveLength(0);
    const message = $(".qvac-grid-message");
    expect(message.hidden).toBe(false);
    expect(message.getAttribute("role")).toBe("alert");
    expect(message.textContent).toContain("'twenty' is not a whole number");
    expect($("input[name=grid_x_values]").getAttribute("aria-invalid")).toBe("true");
    type("grid_x_values", "10, 20"); // typing clears it
    expect(message.hidden).toBe(true);
    type("grid_y", "steps"); // the same parameter twice
    type("grid_y_values", "1");
    $("button[name=generate_grid]").click();
    expect(model.sentOfType("grid")).toHaveLength(0);
    expect(message.textContent).toContain("other than the X axis");
  });

  it("is disabled while busy, without a model and with a dead kernel, like Generate", async () => {
    const { $, model, el, type } = ctx;
    const button = $("button[name=generate_grid]");
    type("grid_x_values", "1, 2");
    expect(button.disabled).toBe(false);
    model.update("busy", true);
    model.update("status", { phase: "sampling", kind: "grid", step: 1, total: 4, grid_cell: 1, grid_cells: 2 });
    expect(button.disabled).toBe(true);
    button.click();
    expect(model.sentOfType("grid")).toHaveLength(0);
    expect($(".qvac-progress-label").textContent).toContain("grid cell 1/2");
    model.update("busy", false);
    model.update("status", { phase: "done", kind: "grid", message: "grid of 2 images", grid_cell: 2, grid_cells: 2 });
    expect(button.disabled).toBe(false);
    model.update("current_model", "");
    expect(button.disabled).toBe(true);
    model.update("current_model", "sd1#1");
    el.classList.add("jupyter-widgets-disconnected");
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(button.disabled).toBe(true);
  });
});

describe("grid status and gallery entries", () => {
  it("describes a grid's cells, its end and its cancel", () => {
    expect(describeStatus({ phase: "sampling", kind: "grid", step: 2, total: 4, grid_cell: 3, grid_cells: 4 })).toBe("Sampling · grid cell 3/4 · step 2/4");
    expect(describeStatus({ phase: "done", kind: "grid", grid_cell: 1, grid_cells: 4, elapsed: 1.5, seed: 7 })).toBe("Done · grid cell 1/4 · 1.5 s · seed 7");
    expect(describeStatus({ phase: "done", kind: "grid", message: "grid of 4 images", grid_cell: 4, grid_cells: 4, elapsed: 6 })).toBe("Done · grid of 4 images · 6.0 s");
    expect(describeStatus({ phase: "cancelled", kind: "grid", message: "1 of 4 grid images made", grid_cells: 4 })).toBe("Cancelled · 1 of 4 grid images made");
  });

  it("labels a grid image in the gallery with its axes", () => {
    const grid = entry("img5", { kind: "grid", seed: null, params: {}, grid: "x: seed = 1, 2", width: 150, height: 90 });
    expect(entryCaption(grid)).toBe("150×90 · grid");
    expect(entryDetails(grid, SCHEMA)).toContainEqual(["Grid", "x: seed = 1, 2"]);
  });
});
