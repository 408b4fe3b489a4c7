"""File names keep people's languages, lose what Windows refuses, and stay short (domain/filenames.py)."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exportd.domain.filenames import MAX_LENGTH, ascii_fallback, clean_file_name, export_file_names
from exportd.export.archive import image_file_names
from exportd.export.source import ImageData

STARTED = datetime(2026, 11, 30, 14, 32, 9, tzinfo=UTC)
WHEN = f"{STARTED.astimezone():%Y-%m-%d_%H%M}"  # the server's time zone
JOB = "3f9a2c1b-7d4e-4c1a-9e0b-2f6d8a7c5b31"


@pytest.mark.parametrize("name", ["Buňky žluté.png", "Zellkerne für µm.tif", "細胞 01.png", "Клетки.jpg"])
def test_unicode_names_are_kept_as_they_are(name):
    assert clean_file_name(name, "x") == name


def test_a_decomposed_name_is_normalised_to_the_composed_form():
    decomposed = unicodedata.normalize("NFD", "Buňky žluté.png")
    assert decomposed != "Buňky žluté.png"
    assert clean_file_name(decomposed, "x") == "Buňky žluté.png"


@pytest.mark.parametrize("character", list('<>:"/\\|?*') + ["\x00", "\x1f", "\x7f", "\x85"])
def test_characters_windows_refuses_become_underscores(character):
    assert clean_file_name(f"a{character}b.png", "x") == "a_b.png"


@pytest.mark.parametrize(("name", "expected"), [
    ("CON", "CON_"), ("con.png", "con_.png"), ("NUL.tar.gz", "NUL_.tar.gz"), ("COM1.txt", "COM1_.txt"),
    ("lpt9", "lpt9_"), ("AUX", "AUX_"), ("PRN.zip", "PRN_.zip"), ("COM¹.png", "COM¹_.png"),
    ("CONOUT$.log", "CONOUT$_.log"),
    # not reserved
    ("CONSOLE.png", "CONSOLE.png"), ("COM10.png", "COM10.png"), ("mycon.png", "mycon.png"),
])
def test_windows_reserved_device_names_are_made_safe_with_any_extension(name, expected):
    assert clean_file_name(name, "x") == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("  spaced.png  ", "spaced.png"), ("trailing dot.", "trailing dot"), ("...", "fallback.png"),
    ("", "fallback.png"), ("///", "fallback.png"), ("../../etc/passwd", "_._etc_passwd"),
])
def test_leading_and_trailing_dots_and_spaces_go_and_nothing_left_means_the_fallback(name, expected):
    assert clean_file_name(name, "fallback.png") == expected


@pytest.mark.parametrize("stem", ["x" * 300, "ž" * 300, "細" * 300])
def test_a_long_name_is_cut_to_100_characters_and_255_bytes_keeping_its_extension(stem):
    cleaned = clean_file_name(stem + ".tiff", "x")
    assert cleaned.endswith(".tiff") and cleaned.startswith(stem[:10])
    assert len(cleaned) <= MAX_LENGTH and len(cleaned.encode()) <= 255


def test_an_exports_names_are_the_project_and_start_time_then_a_short_then_the_whole_id():
    assert export_file_names("Demo spheroids", STARTED, JOB) == [
        f"Demo_spheroids_{WHEN}.zip", f"Demo_spheroids_{WHEN}_3f9a2c1b.zip", f"Demo_spheroids_{WHEN}_{JOB}.zip",
    ]


@pytest.mark.parametrize(("project", "stem"), [
    ("Buňky žluté", "Buňky_žluté"), ("CON", "CON"), ("Zellkerne: Probe 3/4", "Zellkerne_Probe_3_4"),
    ("  ../../etc/passwd  ", "etc_passwd"), ("", "export"), ("***", "export"), ("a   b\tc", "a_b_c"),
])
def test_an_exports_name_keeps_the_projects_language_and_is_safe(project, stem):
    assert export_file_names(project, STARTED, JOB)[0] == f"{stem}_{WHEN}.zip"


@pytest.mark.parametrize("project", ["x" * 300, "Buňky " * 60, "細胞" * 150])
def test_an_exports_name_never_exceeds_100_characters_and_keeps_its_time_and_id(project):
    for name, tail in zip(export_file_names(project, STARTED, JOB), ("", "_3f9a2c1b", f"_{JOB}"), strict=True):
        assert len(name) <= MAX_LENGTH and len(name.encode()) <= 255, name
        assert name.endswith(f"_{WHEN}{tail}.zip") and name.startswith(project[:3].replace(" ", "_"))


def test_the_ascii_fallback_drops_accents_and_anything_a_header_cannot_carry():
    assert ascii_fallback(f"Buňky_žluté_{WHEN}.zip") == f"Bunky_zlute_{WHEN}.zip"
    fallback = ascii_fallback(f'細胞 "quoted" \\ {WHEN}.zip')
    assert fallback.isascii() and '"' not in fallback and "\\" not in fallback and fallback.endswith(".zip")


def test_image_names_in_the_zip_keep_unicode_lose_reserved_names_and_fit_every_derived_file(tmp_path):
    long_a, long_b = "č" * 120 + "a.png", "č" * 120 + "b.png"  # the same first 92 characters
    names = ["Buňka 01.png", "CON.png", "a:b.png", long_a, long_b]
    images = [ImageData(str(n), name, 1, 1, tmp_path) for n, name in enumerate(names, 1)]
    cleaned = image_file_names(images)
    assert cleaned["1"] == "Buňka 01.png" and cleaned["2"] == "CON_.png" and cleaned["3"] == "a_b.png"
    assert cleaned["4"] != cleaned["5"]
    for name in cleaned.values():
        stem = Path(name).stem
        for derived in (name, f"{stem}_viz.png", f"{stem}.geojson", f"{stem}.txt", f"{stem}.tif"):
            assert len(derived) <= MAX_LENGTH, derived
