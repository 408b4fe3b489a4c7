import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { buildOptions, defaultFormValues, defaultOptions, describeOptions } from "../src/options.js";

describe("export options", () => {
  test("the defaults are originals, overlays and docs, COCO and JSON, Excel metrics", () => {
    const { options, errors } = buildOptions(defaultFormValues());
    assert.deepEqual(errors, {});
    assert.deepEqual(options, defaultOptions());
    assert.deepEqual(options.annotationFormats, ["coco", "json"]);
    assert.deepEqual(options.metricsFormats, ["excel"]);
    assert.equal(options.selectedImageIds, null);
    assert.equal(options.pixelToMicrometerScale, null);
  });

  test("every option is carried, with numbers as numbers", () => {
    const { options } = buildOptions({
      ...defaultFormValues(), includeOriginalImages: false, showNumbers: false, externalColor: "#ABCDEF", internalColor: "#000000",
      strokeWidth: "5", fontSize: "24", transparency: "0.75", annotationFormats: ["yolo", "coco"], metricsFormats: ["csv", "json"],
      allImages: false, selectedImageIds: ["i2", "i1", "i2"], useScale: true, pixelToMicrometerScale: "0.65",
    });
    assert.deepEqual(options, {
      includeOriginalImages: false, includeVisualizations: true, includeDocumentation: true,
      visualizationOptions: { showNumbers: false, polygonColors: { external: "#abcdef", internal: "#000000" }, strokeWidth: 5, fontSize: 24, transparency: 0.75 },
      annotationFormats: ["coco", "yolo"], metricsFormats: ["csv", "json"], selectedImageIds: ["i2", "i1"], pixelToMicrometerScale: 0.65,
    });
  });

  test("out-of-range values are refused by field", () => {
    const { options, errors } = buildOptions({
      ...defaultFormValues(), strokeWidth: "0", fontSize: "2.5", transparency: "2", externalColor: "green",
      useScale: true, pixelToMicrometerScale: "5000", allImages: false, selectedImageIds: [],
    });
    assert.equal(options, null);
    assert.deepEqual(Object.keys(errors).sort(), ["externalColor", "fontSize", "pixelToMicrometerScale", "selectedImageIds", "strokeWidth", "transparency"]);
  });

  test("the scale bounds are inclusive, and an unchecked scale is left out", () => {
    assert.equal(buildOptions({ ...defaultFormValues(), useScale: true, pixelToMicrometerScale: "0.001" }).options.pixelToMicrometerScale, 0.001);
    assert.equal(buildOptions({ ...defaultFormValues(), useScale: true, pixelToMicrometerScale: "1000" }).options.pixelToMicrometerScale, 1000);
    assert.equal(buildOptions({ ...defaultFormValues(), useScale: false, pixelToMicrometerScale: "abc" }).options.pixelToMicrometerScale, null);
  });

  test("an export of nothing at all is refused", () => {
    const { errors } = buildOptions({ ...defaultFormValues(), includeOriginalImages: false, includeVisualizations: false, includeDocumentation: false, annotationFormats: [], metricsFormats: [] });
    assert.ok(errors.contents);
  });

  test("the history summary names what is inside", () => {
    assert.equal(describeOptions(defaultOptions()), "images · overlays · COCO+JSON · metrics XLSX · docs");
    assert.equal(describeOptions(null), "");
  });
});
