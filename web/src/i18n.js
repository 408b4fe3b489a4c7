// Every string a person sees comes from a catalogue (locales/en.js, locales/cs.js),
// looked up by key with `{name}` placeholders filled in. A value may be a plural
// table ({one, few, many, other}), chosen by `Intl.PluralRules` from `count`.
// The language is remembered per browser in localStorage; a storage that refuses
// the write (full, disabled) only means the choice lasts until the page closes.

import cs from "./locales/cs.js";
import en from "./locales/en.js";

/** @type {Record<string, Record<string, any>>} */
export const CATALOGUES = { en, cs };
export const LANGUAGES = /** @type {const} */ (["en", "cs"]);
export const LANGUAGE_KEY = "exportd:v1:language";

/**
 * The language to start in: the one chosen before in this browser, else the browser's own
 * if there is a catalogue for it, else English.
 * @param {{getItem(key: string): string|null} | null} storage
 * @param {readonly string[]} preferred   navigator.languages
 */
export function pickLanguage(storage, preferred = []) {
  let saved = null;
  try {
    saved = storage?.getItem(LANGUAGE_KEY) ?? null;
  } catch {
    saved = null;
  }
  if (saved && saved in CATALOGUES) return saved;
  for (const tag of preferred) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (base in CATALOGUES) return base;
  }
  return "en";
}

/** Remember the choice; false when the storage refused it. */
export function saveLanguage(storage, language) {
  try {
    storage.setItem(LANGUAGE_KEY, language);
    return true;
  } catch {
    return false;
  }
}

/**
 * A translator for one language: `t(key, params)`. A key missing from the catalogue falls
 * back to English, then to the key itself (visible, so a test or a person notices).
 * @param {string} language
 * @returns {((key: string, params?: Record<string, any>) => string) & {language: string}}
 */
export function translator(language) {
  const catalogue = CATALOGUES[language] ?? en;
  const rules = new Intl.PluralRules(language);
  const t = (key, params = {}) => {
    let value = catalogue[key] ?? en[key];
    if (value == null) return key;
    if (typeof value === "object") {
      const form = rules.select(Number(params.count ?? 0));
      value = value[form] ?? value.other;
    }
    return String(value).replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
  };
  return Object.assign(t, { language });
}

/** The placeholders a catalogue entry uses, for the consistency test. */
export function placeholders(value) {
  const texts = typeof value === "object" ? Object.values(value) : [value];
  const names = new Set();
  for (const text of texts) for (const match of String(text).matchAll(/\{(\w+)\}/g)) names.add(match[1]);
  return [...names].sort();
}
