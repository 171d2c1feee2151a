// A Studio rendered into the page on a mock model (an SD 1.x model loaded), for the Studio's tests.
import studio from "../src/studio.js";
import FAMILIES from "./fixtures/families.json";
import SCHEMA from "./fixtures/schema.json";
import { mockModel } from "./mock-model.js";

/** The kernel's form rules for one of the made-up family rows of the fixture (tools/gen_family_fixture.py). */
export const rulesOf = (name) => FAMILIES.families[name].form_rules;
/** The model bar's companion fields the kernel lists (catalog.companion_fields), with catalogue names. */
export const COMPANION_FIELDS = FAMILIES.companion_fields.map((f) => ({ ...f, names: f.field === "llm" ? ["QWEN3_4B_Q4_K_M"] : [] }));

export const PARAMS = {
  prompt: "a red boat",
  negative_prompt: "",
  width: 64,
  height: 64,
  steps: 4,
  cfg_scale: 7,
  guidance: 3.5,
  sampling_method: "",
  scheduler: "",
  seed: "-1",
  random_seed: true,
  batch_count: 1,
  strength: 0.75,
  upscale: false,
  upscale_repeats: 1,
  vae_tiling: false,
  cache_preset: "",
  clip_skip: -1,
  eta: null,
};
export const SD1 = { id: "sd1#1", family: "sd1", uses_guidance: false, has_upscaler: false, upscale_factor: 0, engine_defaults: ["euler_a", "discrete"] };
export const PRESETS = [[512, 512], [768, 512]];

export function setup(extra = {}) {
  const model = mockModel({
    current_model: "sd1#1",
    model_info: SD1,
    loaded: ["sd1#1"],
    catalog: { diffusion: ["SD_V2_1_1B_Q8_0"], upscaler: ["REALESRGAN_X4PLUS"], companion_fields: COMPANION_FIELDS },
    form_rules: rulesOf("sdedit"), // an SD 1.x-like row: guidance hidden, strength with an init image
    source_info: {},
    schema: SCHEMA,
    size_presets: PRESETS,
    params: { ...PARAMS },
    status: { phase: "idle" },
    busy: false,
    error: "",
    gallery: [],
    init_image: {},
    ...extra,
  });
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = studio.render({ model, el });
  const $ = (sel) => el.querySelector(sel);
  // Set a field as typing or choosing would, with the event the Studio listens for.
  const type = (name, text) => {
    const input = $(`[name=${name}]`);
    input.value = text;
    input.dispatchEvent(new Event(input.tagName === "SELECT" ? "change" : "input", { bubbles: true }));
  };
  return { model, el, cleanup, $, type };
}
