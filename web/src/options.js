// Export options (DESIGN §4): the dialog's values from the server's defaults, and the
// request body built from the dialog's raw values. The defaults and the sliders' ranges
// are the server's (`GET /api/export/defaults`, from src/exportd/domain/options.py);
// nothing here repeats them. Pure: the DOM code reads the form into `FormValues`.

export const ANNOTATION_FORMATS = ["coco", "yolo", "json", "masks", "geojson"];
export const METRICS_FORMATS = ["excel", "csv", "json"];

/**
 * @typedef {{min: number, max: number, step?: number}} Range
 * @typedef {{options: object, controls: Record<string, Range>}} Defaults  what `GET /api/export/defaults` returns
 */

/**
 * @typedef {object} FormValues   what the dialog's inputs hold (strings for text, number and range inputs)
 * @property {boolean} includeOriginalImages
 * @property {boolean} includeVisualizations
 * @property {boolean} includeDocumentation
 * @property {boolean} showNumbers
 * @property {string} externalColor
 * @property {string} internalColor
 * @property {string|number} strokeWidth
 * @property {string|number} fontSize
 * @property {string|number} transparency   fill transparency in percent (the option is 0–1)
 * @property {string[]} annotationFormats
 * @property {string[]} metricsFormats
 * @property {boolean} allImages
 * @property {string[]} selectedImageIds
 * @property {boolean} useScale
 * @property {string|number} pixelToMicrometerScale
 */

/**
 * The form values that give `options` (the server's defaults, or a job's options for "Try again").
 * @param {any} options
 * @returns {FormValues}
 */
export function formValuesFrom(options) {
  const v = options.visualizationOptions ?? {};
  const selected = Array.isArray(options.selectedImageIds) ? options.selectedImageIds : null;
  return {
    includeOriginalImages: Boolean(options.includeOriginalImages),
    includeVisualizations: Boolean(options.includeVisualizations),
    includeDocumentation: Boolean(options.includeDocumentation),
    showNumbers: Boolean(v.showNumbers),
    externalColor: String(v.polygonColors?.external ?? "").toLowerCase(),
    internalColor: String(v.polygonColors?.internal ?? "").toLowerCase(),
    strokeWidth: String(v.strokeWidth),
    fontSize: String(v.fontSize),
    transparency: String(Math.round(Number(v.transparency) * 100)),
    annotationFormats: [...(options.annotationFormats ?? [])],
    metricsFormats: [...(options.metricsFormats ?? [])],
    allImages: selected == null,
    selectedImageIds: selected ? [...selected] : [],
    useScale: options.pixelToMicrometerScale != null,
    pixelToMicrometerScale: options.pixelToMicrometerScale != null ? String(options.pixelToMicrometerScale) : "",
  };
}

const HEX = /^#[0-9a-fA-F]{6}$/;

function number(raw) {
  if (typeof raw === "number") return raw;
  if (typeof raw !== "string" || raw.trim() === "") return NaN;
  return Number(raw.trim());
}

function integerIn(raw, { min, max }, field, errors) {
  const n = number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    errors[field] = { min, max };
    return undefined;
  }
  return n;
}

/**
 * The `options` of `POST /projects/{id}/export`, or the problems by field: each problem is the
 * params of the catalogue's `error.<field>` (see `problemsText`).
 * @param {FormValues} values
 * @param {Record<string, Range>} controls   the dialog's ranges, from the server
 * @returns {{options: object|null, errors: Record<string, Record<string, any>>}}
 */
export function buildOptions(values, controls) {
  /** @type {Record<string, Record<string, any>>} */
  const errors = {};
  const strokeWidth = integerIn(values.strokeWidth, controls.strokeWidth, "strokeWidth", errors);
  const fontSize = integerIn(values.fontSize, controls.fontSize, "fontSize", errors);
  const percent = number(values.transparency);
  const { min: low, max: high } = controls.transparency;
  if (!Number.isFinite(percent) || percent < low * 100 || percent > high * 100) {
    errors.transparency = { min: low * 100, max: high * 100 };
  }
  const transparency = Math.round(percent) / 100;
  for (const field of ["externalColor", "internalColor"]) {
    if (!HEX.test(String(values[field] ?? ""))) errors[field] = {};
  }
  const annotationFormats = ANNOTATION_FORMATS.filter((name) => values.annotationFormats?.includes(name));
  const metricsFormats = METRICS_FORMATS.filter((name) => values.metricsFormats?.includes(name));

  let selectedImageIds = null;
  if (!values.allImages) {
    selectedImageIds = [...new Set(values.selectedImageIds ?? [])];
    if (!selectedImageIds.length) errors.selectedImageIds = {};
  }

  let pixelToMicrometerScale = null;
  if (values.useScale) {
    const scale = number(values.pixelToMicrometerScale);
    const { min, max } = controls.pixelToMicrometerScale;
    if (!Number.isFinite(scale) || scale < min || scale > max) {
      errors.pixelToMicrometerScale = { min, max };
    } else {
      pixelToMicrometerScale = scale;
    }
  }

  const nothing = !values.includeOriginalImages && !values.includeVisualizations && !values.includeDocumentation
    && !annotationFormats.length && !metricsFormats.length;
  if (nothing) errors.contents = {};

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

/**
 * The problems of `buildOptions`, as sentences.
 * @param {Record<string, Record<string, any>>} errors
 * @param {(key: string, params?: object) => string} t
 */
export function problemsText(errors, t) {
  return Object.entries(errors).map(([field, params]) => t(`error.${field}`, params)).join(" ");
}

/**
 * A short summary of a job's options, for the history list.
 * @param {any} options
 * @param {(key: string, params?: object) => string} t
 */
export function describeOptions(options, t) {
  if (!options || typeof options !== "object") return "";
  const parts = [];
  if (options.includeOriginalImages) parts.push(t("summary.images"));
  if (options.includeVisualizations) parts.push(t("summary.overlays"));
  const annotations = options.annotationFormats ?? [];
  if (annotations.length) parts.push(annotations.map((f) => f.toUpperCase()).join("+"));
  const metrics = options.metricsFormats ?? [];
  if (metrics.length) parts.push(t("summary.metrics", { formats: metrics.map((f) => (f === "excel" ? "XLSX" : f.toUpperCase())).join("+") }));
  if (options.includeDocumentation) parts.push(t("summary.docs"));
  if (Array.isArray(options.selectedImageIds)) parts.push(t("summary.selected", { count: options.selectedImageIds.length }));
  if (options.pixelToMicrometerScale) parts.push(`${options.pixelToMicrometerScale} µm/px`);
  return parts.join(" · ");
}
