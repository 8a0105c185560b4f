"""A generated set of printed prescriptions with their ground truth, for the OCR benchmark and tests.

    documents = prescriptions(seed=12, count=30)

Deterministic from the seed (same fonts installed, same bytes). Each document has a header
(prescriber, practice, patient, date), one to four medication lines from CATALOGUE (look-alike pairs
and medications of several strengths among them; now and then a strength not stocked), a footer, and
one of several layouts, fonts and degradations: clean, rotated 2-7 degrees, noisy, JPEG-compressed,
blurred, a phone photo (all of those), and a PDF of a scanned page.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from prescription_service.scan import CatalogueEntry

FONT_DIR: Final = Path("/usr/share/fonts/truetype")
# Debian's fonts-dejavu-core, fonts-liberation2 and fonts-freefont-ttf (scripts/system-packages.sh).
FONTS: Final = (
    "dejavu/DejaVuSans.ttf",
    "liberation2/LiberationSerif-Regular.ttf",
    "freefont/FreeSans.ttf",
    "liberation2/LiberationSans-Regular.ttf",
    "dejavu/DejaVuSerif.ttf",
    "liberation2/LiberationMono-Regular.ttf",
    "freefont/FreeSerif.ttf",
    "dejavu/DejaVuSansCondensed.ttf",
)
LAYOUTS: Final = ("letter", "form", "list")
DEGRADATIONS: Final = ("clean", "rotated", "noisy", "jpeg", "blurred", "photo", "faint", "pdf")
PAGE_SIZE: Final = (1700, 2200)  # about A5 at 300 dpi


def _entry(
    medication_id: str, name: str, strength: str, form: str, prescription_only: bool = True
) -> CatalogueEntry:
    return CatalogueEntry(
        medication_id=medication_id,
        name=name,
        strength=strength,
        form=form,
        prescription_only=prescription_only,
    )


# A pharmacy's catalogue: look-alike pairs (hydralazine/hydroxyzine, prednisolone/prednisone,
# amlodipine/amiloride, metformin/metronidazole, tramadol/trazodone, sertraline/cetirizine,
# lamotrigine/levetiracetam), and medications stocked in several strengths (warfarin 1, 3 and 5 mg).
CATALOGUE: Final = (
    _entry("med-amox-250", "Amoxicillin", "250 mg", "capsule"),
    _entry("med-amox-500", "Amoxicillin", "500 mg", "capsule"),
    _entry("med-amlo-5", "Amlodipine", "5 mg", "tablet"),
    _entry("med-amlo-10", "Amlodipine", "10 mg", "tablet"),
    _entry("med-amil-5", "Amiloride", "5 mg", "tablet"),
    _entry("med-ator-10", "Atorvastatin", "10 mg", "tablet"),
    _entry("med-ator-20", "Atorvastatin", "20 mg", "tablet"),
    _entry("med-ator-40", "Atorvastatin", "40 mg", "tablet"),
    _entry("med-ator-80", "Atorvastatin", "80 mg", "tablet"),
    _entry("med-bisop-2.5", "Bisoprolol", "2.5 mg", "tablet"),
    _entry("med-bisop-5", "Bisoprolol", "5 mg", "tablet"),
    _entry("med-cetir-10", "Cetirizine", "10 mg", "tablet", prescription_only=False),
    _entry("med-clari-500", "Clarithromycin", "500 mg", "tablet"),
    _entry("med-doxy-100", "Doxycycline", "100 mg", "capsule"),
    _entry("med-furo-40", "Furosemide", "40 mg", "tablet"),
    _entry("med-gaba-300", "Gabapentin", "300 mg", "capsule"),
    _entry("med-hydral-25", "Hydralazine", "25 mg", "tablet"),
    _entry("med-hydral-50", "Hydralazine", "50 mg", "tablet"),
    _entry("med-hydrox-10", "Hydroxyzine", "10 mg", "tablet"),
    _entry("med-hydrox-25", "Hydroxyzine", "25 mg", "tablet"),
    _entry("med-ibup-400", "Ibuprofen", "400 mg", "tablet", prescription_only=False),
    _entry("med-lactu", "Lactulose", "3.35 g/5 ml", "oral solution", prescription_only=False),
    _entry("med-lamo-25", "Lamotrigine", "25 mg", "tablet"),
    _entry("med-lamo-100", "Lamotrigine", "100 mg", "tablet"),
    _entry("med-leve-500", "Levetiracetam", "500 mg", "tablet"),
    _entry("med-levo-25", "Levothyroxine", "25 mcg", "tablet"),
    _entry("med-levo-50", "Levothyroxine", "50 mcg", "tablet"),
    _entry("med-levo-100", "Levothyroxine", "100 mcg", "tablet"),
    _entry("med-metf-500", "Metformin", "500 mg", "tablet"),
    _entry("med-metf-850", "Metformin", "850 mg", "tablet"),
    _entry("med-metro-400", "Metronidazole", "400 mg", "tablet"),
    _entry("med-omep-20", "Omeprazole", "20 mg", "capsule"),
    _entry("med-omep-40", "Omeprazole", "40 mg", "capsule"),
    _entry("med-para-500", "Paracetamol", "500 mg", "tablet", prescription_only=False),
    _entry("med-pred-5", "Prednisolone", "5 mg", "tablet"),
    _entry("med-pred-25", "Prednisolone", "25 mg", "tablet"),
    _entry("med-predn-5", "Prednisone", "5 mg", "tablet"),
    _entry("med-predn-20", "Prednisone", "20 mg", "tablet"),
    _entry("med-rami-5", "Ramipril", "5 mg", "capsule"),
    _entry("med-rami-10", "Ramipril", "10 mg", "capsule"),
    _entry("med-salb-100", "Salbutamol", "100 mcg/dose", "inhaler"),
    _entry("med-sert-50", "Sertraline", "50 mg", "tablet"),
    _entry("med-sert-100", "Sertraline", "100 mg", "tablet"),
    _entry("med-tram-50", "Tramadol", "50 mg", "capsule"),
    _entry("med-traz-50", "Trazodone", "50 mg", "capsule"),
    _entry("med-warf-1", "Warfarin", "1 mg", "tablet"),
    _entry("med-warf-3", "Warfarin", "3 mg", "tablet"),
    _entry("med-warf-5", "Warfarin", "5 mg", "tablet"),
)
# Strengths a prescriber may write that the catalogue does not stock (the line must say so).
NOT_STOCKED: Final = (
    ("Amoxicillin", "125 mg", "capsule"),
    ("Atorvastatin", "30 mg", "tablet"),
    ("Metformin", "1000 mg", "tablet"),
    ("Prednisolone", "1 mg", "tablet"),
    ("Sertraline", "25 mg", "tablet"),
    ("Warfarin", "0.5 mg", "tablet"),
)

PRESCRIBERS: Final = (
    "Dr Amelia Hart",
    "Dr Rajesh Patel",
    "Dr Sarah O'Neill",
    "Dr Tomasz Nowak",
    "Dr Grace Mensah",
)
PRACTICES: Final = (
    "Elm Road Medical Centre",
    "Riverside Surgery",
    "Northgate Health Clinic",
    "Abbey Lane Practice",
)
STREETS: Final = ("12 Elm Road, Leeds LS6 2AB", "4 Mill Street, York YO1 7PX", "88 High Street, Bath BA1 5AW")
PATIENTS: Final = ("John Carter", "Maria Lopez", "Wei Chen", "Fatima Begum", "Peter Ellis", "Olga Ivanova")
PACK_SIZES: Final = {"tablet": (7, 14, 28, 30, 56, 60, 84), "capsule": (7, 14, 21, 28, 30, 56)}
DIRECTIONS: Final = ("Take one daily", "Take one twice a day", "Take two at night", "As directed")


@dataclass(frozen=True)
class TruthLine:
    text: str
    medication_id: str | None  # None: a strength the catalogue does not stock
    name: str
    strength: str
    quantity: int


@dataclass(frozen=True)
class Prescription:
    name: str
    kind: str  # png, jpeg or pdf
    layout: str
    font: str
    degradations: tuple[str, ...]
    data: bytes
    text: str  # everything printed, line by line, in reading order
    lines: tuple[TruthLine, ...]
    clean_image: Image.Image = field(repr=False, compare=False)


def font_path(name: str) -> Path:
    path = FONT_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run scripts/system-packages.sh")
    return path


def medication_lines(rng: random.Random, count: int) -> list[TruthLine]:
    """Medication lines as a prescriber prints them, in varied styles."""
    lines: list[TruthLine] = []
    chosen: set[str] = set()
    while len(lines) < count:
        if rng.random() < 0.12:
            name, strength, form = rng.choice(NOT_STOCKED)
            medication_id = None
        else:
            entry = rng.choice(CATALOGUE)
            name, strength, form, medication_id = entry.name, entry.strength, entry.form, entry.medication_id
        if name in chosen:
            continue
        chosen.add(name)
        quantity = rng.choice(PACK_SIZES[form]) if form in PACK_SIZES else rng.choice((1, 2))
        lines.append(
            TruthLine(
                _line_text(rng, name, strength, form, quantity), medication_id, name, strength, quantity
            )
        )
    return lines


def _line_text(rng: random.Random, name: str, strength: str, form: str, quantity: int) -> str:
    written_strength = strength
    if rng.random() < 0.3:
        written_strength = strength.replace(" mg", "mg").replace(" mcg", "mcg")
    if "mcg" in strength and rng.random() < 0.4:
        written_strength = strength.replace("mcg", rng.choice(("micrograms", "µg")))
    plural = {"tablet": "tablets", "capsule": "capsules"}.get(form, form)
    written_form = rng.choice((form, plural)) if form in PACK_SIZES else form
    counted = [
        f"Qty: {quantity}",
        f"x {quantity}",
        f"#{quantity}",
        f"Quantity: {quantity}",
        f"Supply: {quantity}",
    ]
    if form in PACK_SIZES:
        counted.append(f"{quantity} {plural}")
    return f"{name} {written_strength} {written_form}  {rng.choice(counted)}"


def _header(rng: random.Random) -> tuple[list[tuple[str, str]], str]:
    prescriber, practice = rng.choice(PRESCRIBERS), rng.choice(PRACTICES)
    day, month = rng.randint(1, 28), rng.randint(1, 12)
    date = f"Date: {day:02d}/{month:02d}/2026"
    rows = [
        (f"{prescriber} MBChB MRCGP", date),
        (practice, ""),
        (rng.choice(STREETS), f"Tel: 0113 496 {rng.randint(1000, 9999)}"),
        (
            f"Patient: {rng.choice(PATIENTS)}",
            f"DOB: {rng.randint(1, 28):02d}/0{rng.randint(1, 9)}/19{rng.randint(40, 99)}",
        ),
    ]
    return rows, f"GMC No. {rng.randint(1000000, 9999999)}"


def render(
    rng: random.Random, layout: str, font_name: str, medications: list[TruthLine]
) -> tuple[Image.Image, str]:
    """The clean printed page and its text in reading order."""
    page = Image.new("L", PAGE_SIZE, 255)
    draw = ImageDraw.Draw(page)
    size = rng.randint(38, 46)
    font = ImageFont.truetype(str(font_path(font_name)), size)
    small = ImageFont.truetype(str(font_path(font_name)), size - 4)
    left, y, gap = 110, 120, int(size * 1.6)
    printed: list[str] = []
    header, footer = _header(rng)
    for text_left, text_right in header:
        draw.text((left, y), text_left, font=font, fill=0)
        if text_right:
            width = draw.textlength(text_right, font=font)
            draw.text((PAGE_SIZE[0] - 110 - width, y), text_right, font=font, fill=0)
        printed.append(f"{text_left} {text_right}".strip())
        y += gap
    y += gap
    if layout == "form":
        draw.rectangle(
            (left - 30, y - 20, PAGE_SIZE[0] - 80, y + gap * (2 * len(medications) + 1) + 20),
            outline=0,
            width=3,
        )
    draw.text((left, y), "Rx", font=font, fill=0)
    printed.append("Rx")
    y += gap + 20
    for number, medication in enumerate(medications, start=1):
        text = medication.text
        if layout == "letter":
            text = f"{number}. {text}"
        elif layout == "list":
            text = f"- {text}"
        while draw.textlength(text, font=font) > PAGE_SIZE[0] - 2 * left and font.size > 24:
            font = ImageFont.truetype(str(font_path(font_name)), font.size - 2)
        draw.text((left, y), text, font=font, fill=0)
        printed.append(text)
        y += gap
        if layout != "list":
            direction = rng.choice(DIRECTIONS)
            draw.text((left + 60, y), direction, font=small, fill=0)
            printed.append(direction)
            y += gap
    y = PAGE_SIZE[1] - 260
    draw.line((left, y, left + 600, y), fill=0, width=2)
    draw.text((left, y + 20), "Signature", font=small, fill=0)
    draw.text((left, y + 20 + gap), footer, font=small, fill=0)
    printed += ["Signature", footer]
    return page, "\n".join(printed)


def degrade(page: Image.Image, kind: str, rng: random.Random, noise: np.random.Generator) -> Image.Image:
    """The page as a scanner or a phone would give it."""
    image = page
    if kind == "faint":
        # A printer low on toner: grey strokes.
        toner = rng.uniform(0.4, 0.55)
        image = image.point(lambda level: round(255 - (255 - level) * toner))
    if kind in ("noisy", "jpeg", "photo"):
        # A 150-200 dpi scan or a phone a little far away: fewer pixels per letter.
        factor = rng.uniform(0.55, 0.75)
        image = image.resize(
            (round(image.width * factor), round(image.height * factor)), Image.Resampling.BILINEAR
        )
    if kind in ("photo",):
        # Paper is not white under a lamp: a grey cast with a gradient across the page.
        shade = np.linspace(rng.uniform(200, 225), rng.uniform(235, 250), image.width)[None, :]
        pixels = np.asarray(image, dtype=np.float64) / 255 * shade
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    if kind in ("rotated", "photo", "pdf"):
        angle = rng.uniform(2, 7) * rng.choice((-1, 1)) if kind != "pdf" else rng.uniform(-2.5, 2.5)
        image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    if kind in ("blurred", "photo"):
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 1.6)))
    if kind in ("noisy", "photo"):
        pixels = np.asarray(image, dtype=np.float64)
        pixels = pixels + noise.normal(0, rng.uniform(12, 22), pixels.shape)
        speckle = noise.random(pixels.shape)
        pixels[speckle < 0.003] = 0
        pixels[speckle > 0.997] = 255
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    return image


def encode(image: Image.Image, kind: str, rng: random.Random) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    if kind in ("jpeg", "photo"):
        image.convert("RGB").save(buffer, "JPEG", quality=rng.randint(12, 30))
        return buffer.getvalue(), "jpeg"
    if kind == "pdf":
        # A scanned page in a PDF, as a practice's scanner sends it.
        image.convert("RGB").save(buffer, "PDF", resolution=300)
        return buffer.getvalue(), "pdf"
    image.save(buffer, "PNG")
    return buffer.getvalue(), "png"


def prescriptions(seed: int, count: int) -> list[Prescription]:
    """`count` prescriptions from `seed`: fonts, layouts and degradations in turn, contents at random."""
    documents = []
    for index in range(count):
        rng = random.Random(f"{seed}:{index}")
        noise = np.random.default_rng([seed, index])
        font_name = FONTS[index % len(FONTS)]
        layout = LAYOUTS[index % len(LAYOUTS)]
        # Offset by the round so that each font meets every degradation.
        degradation = DEGRADATIONS[(index + index // len(FONTS)) % len(DEGRADATIONS)]
        medications = medication_lines(rng, rng.randint(1, 4))
        page, text = render(rng, layout, font_name, medications)
        data, kind = encode(degrade(page, degradation, rng, noise), degradation, rng)
        documents.append(
            Prescription(
                name=f"rx-{seed}-{index:02d}",
                kind=kind,
                layout=layout,
                font=Path(font_name).stem,
                degradations=(degradation,),
                data=data,
                text=text,
                lines=tuple(medications),
                clean_image=page,
            )
        )
    return documents
