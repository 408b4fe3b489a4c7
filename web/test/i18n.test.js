import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { CATALOGUES, LANGUAGE_KEY, pickLanguage, placeholders, saveLanguage, translator } from "../src/i18n.js";
import { MemoryStorage } from "../src/persist.js";

const SRC = join(dirname(fileURLToPath(import.meta.url)), "..", "src");
const read = (name) => readFileSync(join(SRC, name), "utf8");
const MODULES = readdirSync(SRC).filter((name) => name.endsWith(".js"));

/** A storage whose every call throws, as a disabled or full localStorage does. */
const broken = { getItem() { throw new Error("SecurityError"); }, setItem() { throw new Error("QuotaExceededError"); } };

describe("the catalogues", () => {
  test("English and Czech have the same keys, each with the same placeholders", () => {
    const { en, cs } = CATALOGUES;
    assert.deepEqual(Object.keys(cs).sort(), Object.keys(en).sort());
    for (const key of Object.keys(en)) {
      assert.deepEqual(placeholders(cs[key]), placeholders(en[key]), key);
      assert.equal(typeof cs[key], typeof en[key], `${key}: both plain or both plural tables`);
      assert.ok(String(typeof cs[key] === "object" ? cs[key].other : cs[key]).trim(), `${key} is empty in Czech`);
    }
  });

  test("every key the code asks for exists", () => {
    const asked = new Set();
    for (const name of MODULES) {
      for (const match of read(name).matchAll(/\b(?:t|text)\(\s*"([\w.-]+)"/g)) asked.add(match[1]);
    }
    for (const match of read("index.html").matchAll(/data-i18n(?:-[\w-]+)?="([\w.-]+)"/g)) asked.add(match[1]);
    assert.ok(asked.size > 50, `found only ${asked.size} keys: the scan is broken`);
    const missing = [...asked].filter((key) => !(key in CATALOGUES.en));
    assert.deepEqual(missing, []);
  });

  test("plurals follow each language's rules", () => {
    const cs = translator("cs");
    assert.equal(cs("projects.images", { count: 1 }), "1 obrázek");
    assert.equal(cs("projects.images", { count: 3 }), "3 obrázky");
    assert.equal(cs("projects.images", { count: 12 }), "12 obrázků");
    assert.equal(translator("en")("projects.images", { count: 1 }), "1 image");
    assert.equal(translator("en")("projects.images", { count: 2 }), "2 images");
  });
});

describe("no visible string outside the catalogues", () => {
  test("index.html has no text of its own: every element with words takes them from a key", () => {
    const html = read("index.html")
      .replace(/<!--[\s\S]*?-->/g, "")
      .replace(/<head>[\s\S]*<\/head>/, "")
      .replace(/<option value="(en|cs)">[^<]*<\/option>/g, "") // each language's own name
      .replace(/<span class="brand">[\s\S]*?<\/span>/, ""); // the product's name
    const words = html.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim();
    assert.equal(words, "", `text in index.html: ${words.slice(0, 200)}`);
    for (const attribute of ["placeholder", "aria-label", "title", "alt"]) {
      assert.doesNotMatch(html, new RegExp(`\\s${attribute}="[^"]*[A-Za-z]`), `a literal ${attribute} in index.html`);
    }
  });

  test("the view modules put no literal words on the page", () => {
    // What reaches the page: textContent, title, alt, placeholder, aria attributes, and the
    // strings the view returns. A literal with a letter in any of them is a hard-coded text.
    const sinks = /(?:\.textContent|\.title|\.alt|\.placeholder|\.innerHTML|\.innerText)\s*=\s*(["'`])([^"'`]*)\1/g;
    const attributes = /setAttribute\(\s*"(?:aria-(?:label|valuetext|description)|title|alt|placeholder)"\s*,\s*(["'`])([^"'`]*)\1/g;
    for (const name of ["ui.js", "import_ui.js", "view.js", "main.js", "options.js", "picker.js", "importer.js", "state.js", "downloader.js"]) {
      const source = read(name).replace(/^\s*(?:\/\/|\*|\/\*\*).*$/gm, "").replace(/\s\/\/ .*$/gm, ""); // comments
      for (const pattern of [sinks, attributes]) {
        for (const match of source.matchAll(pattern)) {
          const literal = match[2].replace(/\$\{[^}]*\}/g, "");
          assert.doesNotMatch(literal, /\p{L}/u, `${name}: ${match[0]}`);
        }
      }
      // Sentences in string literals (two words or more, starting with a capital) are for people.
      const sentences = [...source.matchAll(/(["'`])([A-Z][a-z]+(?: [a-z]+)+[^"'`]*)\1/g)]
        .map((match) => match[2])
        .filter((literal) => !/^(?:GET|POST|PUT|DELETE|Content-Type|Idempotency-Key|Retry-After)\b/.test(literal));
      assert.deepEqual(sentences, [], `${name} has sentences outside the catalogues`);
    }
  });
});

describe("the language choice", () => {
  test("is remembered per browser and wins over the browser's own language", () => {
    const storage = new MemoryStorage();
    assert.equal(pickLanguage(storage, ["cs-CZ", "en"]), "cs");
    assert.equal(pickLanguage(storage, ["de-DE"]), "en");
    assert.ok(saveLanguage(storage, "en"));
    assert.equal(storage.getItem(LANGUAGE_KEY), "en");
    assert.equal(pickLanguage(storage, ["cs-CZ"]), "en");
  });

  test("a storage that throws falls back to the browser's language, and saving says it failed", () => {
    assert.equal(pickLanguage(broken, ["cs"]), "cs");
    assert.equal(saveLanguage(broken, "cs"), false);
  });

  test("an unknown saved language is ignored", () => {
    const storage = new MemoryStorage();
    storage.setItem(LANGUAGE_KEY, "xx");
    assert.equal(pickLanguage(storage, []), "en");
  });
});
