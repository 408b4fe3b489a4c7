// Export options (DESIGN §4; src/exportd/domain/options.py is the truth for
// names, defaults and ranges): the defaults, and the request body built from
// the dialog's raw values. Pure: the DOM code reads the form into `FormValues`.

export const ANNOTATION_FORMATS = ["coco", "yolo", "json"];
export const METRICS_FORMATS = ["excel", "csv", "json"];

export const LIMITS = {
  strokeWidth: { min: 1, max: 50 },
  fontSize: { min: 6, max: 200 },
  transparency: { min: 0, max: 1 },
  pixelToMicrometerScale: { min: 0.001, max: 1000 },
};

/** The server's defaults: originals, overlays and documentation; COCO and JSON; Excel metrics. */
export function defaultOptions() {
  return {
    includeOriginalImages: true,
    includeVisualizations: true,
    includeDocumentation: true,
    visualizationOptions: {
      showNumbers: true,
      polygonColors: { external: "#00ff00", internal: "#ff0000" },
      strokeWidth: 2,
      fontSize: 16,
      transparency: 0.3,
    },
    annotationFormats: ["coco", "json"],
    metricsFormats: ["excel"],
    selectedImageIds: null,
    pixelToMicrometerScale: null,
  };
}

/**
 * @typedef {object} FormValues   what the dialog's inputs hold (strings for text and number inputs)
 * @property {boolean} includeOriginalImages
 * @property {boolean} includeVisualizations
 * @property {boolean} includeDocumentation
 * @property {boolean} showNumbers
 * @property {string} externalColor
 * @property {string} internalColor
 * @property {string|number} strokeWidth
 * @property {string|number} fontSize
 * @property {string|number} transparency
 * @property {string[]} annotationFormats
 * @property {string[]} metricsFormats
 * @property {boolean} allImages
 * @property {string[]} selectedImageIds
 * @property {boolean} useScale
 * @property {string|number} pixelToMicrometerScale
 */

/** The form values that give `defaultOptions()`. */
export function defaultFormValues() {
  const o = defaultOptions();
  const v = o.visualizationOptions;
  return {
    includeOriginalImages: o.includeOriginalImages,
    includeVisualizations: o.includeVisualizations,
    includeDocumentation: o.includeDocumentation,
    showNumbers: v.showNumbers,
    externalColor: v.polygonColors.external,
    internalColor: v.polygonColors.internal,
    strokeWidth: String(v.strokeWidth),
    fontSize: String(v.fontSize),
    transparency: String(v.transparency),
    annotationFormats: [...o.annotationFormats],
    metricsFormats: [...o.metricsFormats],
    allImages: true,
    selectedImageIds: [],
    useScale: false,
    pixelToMicrometerScale: "",
  };
}

const HEX = /^#[0-9a-fA-F]{6}$/;

function number(raw) {
  if (typeof raw === "number") return raw;
  if (typeof raw !== "string" || raw.trim() === "") return NaN;
  return Number(raw.trim());
}

function integerIn(raw, { min, max }, label, field, errors) {
  const n = number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    errors[field] = `${label} must be a whole number from ${min} to ${max}.`;
    return undefined;
  }
  return n;
}

/**
 * The `options` of `POST /projects/{id}/export`, or the problems by field.
 * @param {FormValues} values
 * @returns {{options: object|null, errors: Record<string, string>}}
 */
export function buildOptions(values) {
  /** @type {Record<string, string>} */
  const errors = {};
  const strokeWidth = integerIn(values.strokeWidth, LIMITS.strokeWidth, "Stroke width", "strokeWidth", errors);
  const fontSize = integerIn(values.fontSize, LIMITS.fontSize, "Font size", "fontSize", errors);
  const transparency = number(values.transparency);
  if (!Number.isFinite(transparency) || transparency < 0 || transparency > 1) {
    errors.transparency = "Transparency must be between 0 and 1.";
  }
  for (const [field, label] of [["externalColor", "External polygon colour"], ["internalColor", "Internal polygon colour"]]) {
    if (!HEX.test(String(values[field] ?? ""))) errors[field] = `${label} must look like #00ff00.`;
  }
  const annotationFormats = ANNOTATION_FORMATS.filter((name) => values.annotationFormats?.includes(name));
  const metricsFormats = METRICS_FORMATS.filter((name) => values.metricsFormats?.includes(name));

  let selectedImageIds = null;
  if (!values.allImages) {
    selectedImageIds = [...new Set(values.selectedImageIds ?? [])];
    if (!selectedImageIds.length) errors.selectedImageIds = "Select at least one image, or export all images.";
  }

  let pixelToMicrometerScale = null;
  if (values.useScale) {
    const scale = number(values.pixelToMicrometerScale);
    const { min, max } = LIMITS.pixelToMicrometerScale;
    if (!Number.isFinite(scale) || scale < min || scale > max) {
      errors.pixelToMicrometerScale = `The pixel size must be between ${min} and ${max} µm per pixel.`;
    } else {
      pixelToMicrometerScale = scale;
    }
  }

  const nothing = !values.includeOriginalImages && !values.includeVisualizations && !values.includeDocumentation
    && !annotationFormats.length && !metricsFormats.length;
  if (nothing) errors.contents = "Choose at least one thing to export.";

  if (Object.keys(errors).length) return { options: null, errors };
  return {
    errors,
    options: {
      includeOriginalImages: Boolean(values.includeOriginalImages),
      includeVisualizations: Boolean(values.includeVisualizations),
      includeDocumentation: Boolean(values.includeDocumentation),
      visualizationOptions: {
        showNumbers: Boolean(values.showNumbers),
        polygonColors: { external: String(values.externalColor).toLowerCase(), internal: String(values.internalColor).toLowerCase() },
        strokeWidth,
        fontSize,
        transparency,
      },
      annotationFormats,
      metricsFormats,
      selectedImageIds,
      pixelToMicrometerScale,
    },
  };
}

/** A short human summary of a job's options, for the history list. */
export function describeOptions(options) {
  if (!options || typeof options !== "object") return "";
  const parts = [];
  if (options.includeOriginalImages) parts.push("images");
  if (options.includeVisualizations) parts.push("overlays");
  const annotations = options.annotationFormats ?? [];
  if (annotations.length) parts.push(annotations.map((f) => f.toUpperCase()).join("+"));
  const metrics = options.metricsFormats ?? [];
  if (metrics.length) parts.push(`metrics ${metrics.map((f) => (f === "excel" ? "XLSX" : f.toUpperCase())).join("+")}`);
  if (options.includeDocumentation) parts.push("docs");
  if (Array.isArray(options.selectedImageIds)) parts.push(`${options.selectedImageIds.length} selected`);
  if (options.pixelToMicrometerScale) parts.push(`${options.pixelToMicrometerScale} µm/px`);
  return parts.join(" · ");
}
