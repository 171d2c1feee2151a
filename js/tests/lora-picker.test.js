// The LoRA picker writes the `lora` trait as [[source, weight], ...] from its switches and sliders.
import { describe, expect, it } from "vitest";
import { createLoraPicker } from "../src/lora-picker.js";
import { mockModel } from "./mock-model.js";

const FILES = [
  { name: "style.safetensors", source: "/loras/style.safetensors" },
  { name: "detail.safetensors", source: "hf://user/repo/detail.safetensors" },
];

function setup(lora = []) {
  const model = mockModel({ lora_files: FILES, lora });
  const picker = createLoraPicker(model);
  model.on("change:lora", picker.render);
  model.on("change:lora_files", picker.render);
  picker.render();
  const rows = () => [...picker.el.querySelectorAll(".qvac-lora-row")];
  return { model, picker, rows };
}

const fire = (el, type) => el.dispatchEvent(new Event(type, { bubbles: true }));

describe("LoRA picker", () => {
  it("lists the kernel's files, off, with labelled weights", () => {
    const { rows, picker } = setup();
    expect(rows().map((r) => r.querySelector("label").textContent)).toEqual(["style.safetensors", "detail.safetensors"]);
    expect(rows().every((r) => !r.querySelector("[name=lora_on]").checked)).toBe(true);
    expect(rows()[0].querySelector("[name=lora_weight]").disabled).toBe(true);
    expect(rows()[0].querySelector("[name=lora_weight]").getAttribute("aria-label")).toBe("weight of style.safetensors");
    expect(picker.el.querySelector(".qvac-lora-empty").hidden).toBe(true);
  });

  it("switching one on writes it at weight 1; a slider change writes the new weight; off removes it", () => {
    const { model, rows } = setup();
    const toggle = rows()[1].querySelector("[name=lora_on]");
    toggle.checked = true;
    fire(toggle, "change");
    expect(model.get("lora")).toEqual([["hf://user/repo/detail.safetensors", 1]]);
    const slider = rows()[1].querySelector("[name=lora_weight]");
    expect(slider.disabled).toBe(false);
    slider.value = "0.35";
    fire(slider, "input");
    expect(rows()[1].querySelector(".qvac-lora-weight").textContent).toBe("0.35");
    fire(slider, "change");
    expect(model.get("lora")).toEqual([["hf://user/repo/detail.safetensors", 0.35]]);
    const off = rows()[1].querySelector("[name=lora_on]");
    off.checked = false;
    fire(off, "change");
    expect(model.get("lora")).toEqual([]);
    expect(model.saves).toBe(3);
  });

  it("shows a choice made elsewhere (a replayed PNG record) and says when no files are found", () => {
    const { model, rows, picker } = setup([["/loras/style.safetensors", -0.5]]);
    expect(rows()[0].querySelector("[name=lora_on]").checked).toBe(true);
    expect(rows()[0].querySelector("[name=lora_weight]").value).toBe("-0.5");
    expect(picker.el.querySelector("summary").textContent).toBe("LoRA (1 on)");
    model.update("lora_folders", ["loras"]);
    model.update("lora_files", []);
    expect(rows()).toEqual([]);
    expect(picker.el.querySelector(".qvac-lora-empty").hidden).toBe(false);
    expect(picker.el.querySelector(".qvac-lora-empty").textContent).toContain("No LoRA files found in loras:");
  });

  it("looks for files added later when opened and on request", () => {
    const { model, picker } = setup();
    picker.el.open = true;
    picker.el.dispatchEvent(new Event("toggle"));
    picker.el.querySelector("[name=lora_refresh]").click();
    expect(model.sentOfType("lora_refresh")).toHaveLength(2);
  });
});
