import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { translator } from "../src/i18n.js";
import { buildOptions, describeOptions, formValuesFrom, problemsText } from "../src/options.js";

// A stand-in for `GET /api/export/defaults`, deliberately not the server's own values:
// the dialog must carry whatever the server says.
const SERVED = {
  options: {
    includeOriginalImages: true, includeVisualizations: true, includeDocumentation: false,
    visualizationOptions: { showNumbers: true, polygonColors: { external: "#AA0000", internal: "#0000AA" }, strokeWidth: 3, fontSize: 28, transparency: 0.4 },
    annotationFormats: ["coco"], metricsFormats: ["csv"], selectedImageIds: null, pixelToMicrometerScale: null,
  },
  controls: {
    strokeWidth: { min: 1, max: 10, step: 1 }, fontSize: { min: 10, max: 50, step: 2 },
    transparency: { min: 0, max: 1, step: 0.1 }, pixelToMicrometerScale: { min: 0.001, max: 1000 },
  },
};
const controls = SERVED.controls;
const defaults = () => formValuesFrom(SERVED.options);

describe("export options", () => {
  test("the server's defaults, unchanged in the dialog, are sent back as they came (colours lower-cased)", () => {
    const { options, errors } = buildOptions(defaults(), controls);
    assert.deepEqual(errors, {});
    const expected = structuredClone(SERVED.options);
    expected.visualizationOptions.polygonColors = { external: "#aa0000", internal: "#0000aa" };
    assert.deepEqual(options, expected);
  });

  test("the fill slider is in percent; the option is a fraction", () => {
    assert.equal(defaults().transparency, "40");
    assert.equal(buildOptions({ ...defaults(), transparency: "70" }, controls).options.visualizationOptions.transparency, 0.7);
    assert.equal(buildOptions({ ...defaults(), transparency: "0" }, controls).options.visualizationOptions.transparency, 0);
  });

  test("a job's options fill the dialog again, selection and scale included", () => {
    const options = { ...SERVED.options, selectedImageIds: ["i1"], pixelToMicrometerScale: 0.5 };
    const values = formValuesFrom(options);
    assert.equal(values.allImages, false);
    assert.deepEqual(values.selectedImageIds, ["i1"]);
    assert.equal(values.useScale, true);
    assert.equal(buildOptions(values, controls).options.pixelToMicrometerScale, 0.5);
  });

  test("every option is carried, with numbers as numbers", () => {
    const { options } = buildOptions({
      ...defaults(), includeOriginalImages: false, showNumbers: false, externalColor: "#ABCDEF", internalColor: "#000000",
      strokeWidth: "5", fontSize: "24", transparency: "80", annotationFormats: ["yolo", "coco"], metricsFormats: ["csv", "json"],
      allImages: false, selectedImageIds: ["i2", "i1", "i2"], useScale: true, pixelToMicrometerScale: "0.65",
    }, controls);
    assert.deepEqual(options, {
      includeOriginalImages: false, includeVisualizations: true, includeDocumentation: false,
      visualizationOptions: { showNumbers: false, polygonColors: { external: "#abcdef", internal: "#000000" }, strokeWidth: 5, fontSize: 24, transparency: 0.8 },
      annotationFormats: ["coco", "yolo"], metricsFormats: ["csv", "json"], selectedImageIds: ["i2", "i1"], pixelToMicrometerScale: 0.65,
    });
  });

  test("values outside the server's ranges are refused by field", () => {
    const { options, errors } = buildOptions({
      ...defaults(), strokeWidth: "11", fontSize: "8", transparency: "120", externalColor: "green",
      useScale: true, pixelToMicrometerScale: "5000", allImages: false, selectedImageIds: [],
    }, controls);
    assert.equal(options, null);
    assert.deepEqual(Object.keys(errors).sort(), ["externalColor", "fontSize", "pixelToMicrometerScale", "selectedImageIds", "strokeWidth", "transparency"]);
    const said = problemsText(errors, translator("en"));
    assert.match(said, /Stroke width must be a whole number from 1 to 10\./);
    assert.match(said, /Fill transparency must be from 0 to 100 %/);
    assert.match(problemsText(errors, translator("cs")), /Tloušťka čáry musí být celé číslo od 1 do 10\./);
  });

  test("the scale bounds are inclusive, and an unchecked scale is left out", () => {
    assert.equal(buildOptions({ ...defaults(), useScale: true, pixelToMicrometerScale: "0.001" }, controls).options.pixelToMicrometerScale, 0.001);
    assert.equal(buildOptions({ ...defaults(), useScale: true, pixelToMicrometerScale: "1000" }, controls).options.pixelToMicrometerScale, 1000);
    assert.equal(buildOptions({ ...defaults(), useScale: false, pixelToMicrometerScale: "abc" }, controls).options.pixelToMicrometerScale, null);
  });

  test("an export of nothing at all is refused", () => {
    const { errors } = buildOptions({ ...defaults(), includeOriginalImages: false, includeVisualizations: false, includeDocumentation: false, annotationFormats: [], metricsFormats: [] }, controls);
    assert.ok(errors.contents);
  });

  test("the history summary names what is inside", () => {
    const en = translator("en");
    assert.equal(describeOptions({ ...SERVED.options, includeDocumentation: true, annotationFormats: ["coco", "json"], metricsFormats: ["excel"] }, en),
      "images · overlays · COCO+JSON · metrics XLSX · docs");
    assert.equal(describeOptions({ ...SERVED.options, selectedImageIds: ["a", "b"] }, translator("cs")), "obrázky · překryvy · COCO · metriky CSV · vybráno 2");
    assert.equal(describeOptions(null, en), "");
  });
});
