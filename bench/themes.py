"""What tagging a commented answer with comment themes costs (issue 21: ≤ 20 µs of CPU per answer).

A realistic theme set (THEMES below: 20 themes, 4 of them parents, terms in en, nl, et, de and es and
brand names under `any`) and generated comments: one or two customer sentences of one language (the
labelled comments of tests/themes/comments.py, 50 per language), mixed as a European shop's would be
(en 40 %, nl 20 %, de 15 %, et 15 %, es 10 %), a third with an order number, some with a brand. Each
run tags every comment with `ThemeMatcher.tag`, as the worker will for each commented answer:

    given      the event carries `language`
    detected   it does not: the language is decided among the five first

Timing: CPU time (time.process_time) over --comments comments, best of --repeat passes over the
same comments with the caches warm (the steady state: customers reuse their words), and the first
pass with every cache empty (a fresh matcher after a hot reload) reported apart, as is one snowball
stemming of a new word.

Usage: .venv/bin/python bench/themes.py [--comments 20000] [--repeat 5] [--profile]
`--profile` runs one warm pass of `detected` under cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from tests.themes.comments import HELD_OUT, WRITTEN  # noqa: E402
from worker.themes import StemCache, ThemeMatcher, build_themes  # noqa: E402
from worker.themes.matcher import REMEMBERED  # noqa: E402

THEMES = """
themes:
  - {id: delivery, label: Delivery}
  - id: shipping-delay
    label: Shipping delay
    parent: delivery
    terms:
      en: [late, delay, "never arrived", "still waiting"]
      nl: [vertraging, "te laat", "nooit aangekomen"]
      et: [hilinemine, hilines, "ei jõudnud"]
      de: [Verspätung, "zu spät", "nie angekommen"]
      es: [retraso, tarde, "nunca llegó"]
      any: [PostNL, DHL, DPD]
  - id: damaged-goods
    label: Damaged goods
    parent: delivery
    terms:
      en: [broken, damaged, torn]
      nl: [kapot, beschadigd, gescheurd]
      et: [katki, purunenud, rebenenud]
      de: [kaputt, beschädigt, zerrissen]
      es: [roto, dañado]
  - id: wrong-address
    label: Wrong address
    parent: delivery
    terms:
      en: ["wrong address", "left the package", "in the rain"]
      nl: ["verkeerde adres", "voor de deur"]
      et: ["vale aadress", "valele aadressile"]
      de: ["falsche Adresse", "vor die Tür"]
      es: ["dirección equivocada"]
  - id: missing-items
    label: Missing items
    parent: delivery
    terms:
      en: [missing, "items were missing"]
      nl: [ontbrak, ontbraken]
      et: [puudus]
      de: [fehlte, fehlten]
      es: [faltaba, faltaban]
  - {id: billing, label: Billing}
  - id: wrong-invoice
    label: Wrong invoice
    parent: billing
    terms:
      en: [invoice, "wrong price", "old price"]
      nl: [factuur, facturen, "oude prijs"]
      et: [arve, "vana hind"]
      de: [Rechnung, "alte Preis"]
      es: [factura, "precio antiguo"]
  - id: double-charge
    label: Charged twice
    parent: billing
    terms:
      en: ["charged twice", "double charge"]
      nl: ["twee keer gefactureerd", "dubbel betaald"]
      et: ["kaks korda"]
      de: [zweimal, "doppelt berechnet"]
      es: ["dos veces", "cobraron dos veces"]
  - id: refund
    label: Refund
    parent: billing
    terms:
      en: [refund, "money back"]
      nl: [terugbetaling, "geld terug", teruggestort]
      et: ["raha tagasi", tagastamine]
      de: [Erstattung, "Geld zurück"]
      es: [reembolso, "dinero de vuelta"]
  - id: price-increase
    label: Price increase
    parent: billing
    terms:
      en: ["price went up", expensive, cheaper]
      nl: [duur, verhoogd, goedkoper]
      et: [kallis, odavam, "hind tõusis"]
      de: [teuer, erhöht, günstiger]
      es: [caro, cara, barato, "subieron el precio"]
  - {id: support, label: Support}
  - id: no-answer
    label: No answer
    parent: support
    terms:
      en: ["never answered", "nobody picks up", "no one called", "called back"]
      nl: ["nooit gereageerd", "niet bereikbaar", teruggebeld]
      et: ["ei vastanud", "ei helistanud"]
      de: ["nie geantwortet", "niemand erreicht", zurückgerufen]
      es: ["nunca respondió", "nadie contesta", "nadie me devolvió"]
  - id: rude-staff
    label: Rude staff
    parent: support
    terms:
      en: [rude, unhelpful]
      nl: [onbeleefd, onbeschoft]
      et: [ebaviisakas]
      de: [unhöflich, unfreundlich]
      es: [grosero, maleducado]
  - id: long-wait
    label: Long wait
    parent: support
    terms:
      en: ["wait was", "on hold", "took me"]
      nl: [wachttijd, "in de wacht"]
      et: [ootamine]
      de: [Wartezeit, Warteschleife]
      es: [espera]
  - {id: product, label: Product}
  - id: app-crash
    label: App crashes
    parent: product
    terms:
      en: [crash, crashing, error, "keeps crashing"]
      nl: ["loopt vast", foutmelding]
      et: ["jookseb kokku", viga, vea]
      de: [abstürzen, stürzt, Fehler]
      es: ["se cierra", error]
  - id: login-problems
    label: Login problems
    parent: product
    terms:
      en: ["log in", login, locked]
      nl: [inloggen, inlogpagina, geblokkeerd]
      et: ["sisse logima", sisselogimise, lukustati]
      de: [anmelden, Anmeldeseite, gesperrt]
      es: ["iniciar sesión", acceso, bloquearon]
  - id: confusing-ui
    label: Confusing interface
    parent: product
    terms:
      en: [confusing, "hard to follow", "can't find"]
      nl: [onduidelijk, ingewikkeld, lastig]
      et: [segane, raskesti]
      de: [verwirrend, kompliziert, "schwer verständlich"]
      es: [confuso, difíciles]
  - id: cancellation
    label: Cancellation
    terms:
      en: [cancel, cancelled, "another supplier"]
      nl: [opzeggen, opgezegd, "nooit meer"]
      et: [lõpetage, loobusime, "enam kunagi"]
      de: [kündigen, gekündigt, "nie wieder"]
      es: [cancelar, cancelado, "no vuelvo"]
  - id: praise
    label: Praise
    terms:
      en: [great, excellent, "thank you", friendly]
      nl: [top, bedankt, vriendelijk, prima]
      et: [aitäh, suurepärane, sõbralik]
      de: [danke, toll, freundlich]
      es: [gracias, excelente, amable]
"""

MIX = {"en": 40, "nl": 20, "de": 15, "et": 15, "es": 10}
BRANDS = ["PostNL", "DHL", "DPD", "iDEAL", "Visa"]


def comments(count: int, seed: int, new_words: float = 0.0) -> list[tuple[str, str]]:
    """(comment, language) pairs: one or two sentences of one language, some with an order number or a brand;
    `new_words`: the share of words given a typo (a letter inserted), each a spelling no cache has seen."""
    rng = random.Random(seed)
    pools = {language: WRITTEN[language] + HELD_OUT[language] for language in MIX}
    languages = rng.choices(list(MIX), weights=list(MIX.values()), k=count)
    made = []
    for language in languages:
        text = " ".join(rng.sample(pools[language], rng.choice([1, 1, 2])))
        if new_words:
            text = " ".join(_typo(rng, word) if rng.random() < new_words else word for word in text.split())
        if rng.random() < 0.33:
            text += f" #{rng.randrange(100000, 999999)}"
        if rng.random() < 0.1:
            text += f" ({rng.choice(BRANDS)})"
        made.append((text, language))
    return made


def _typo(rng: random.Random, word: str) -> str:
    at = rng.randrange(len(word) + 1)
    return word[:at] + rng.choice("abcdefghijklmnopqrstuvwxyz") + word[at:]


def matcher(remember: int = 0) -> ThemeMatcher:
    """`remember`: short comments remembered with their tagging (the worker's default, REMEMBERED); 0 here, so
    that a pass over the same comments times the tagging itself, not the look-up of a repeat."""
    return ThemeMatcher(build_themes([yaml.safe_load(THEMES)["themes"]]), remember=remember)


def cpu_us(run: ThemeMatcher, batch: list[tuple[str, str]], given: bool) -> float:
    tag = run.tag
    start = time.process_time()
    if given:
        for text, language in batch:
            tag(text, language)
    else:
        for text, _ in batch:
            tag(text)
    return (time.process_time() - start) / len(batch) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comments", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--new-words", type=float, default=0.02, help="share of words with a typo in the second set (default 0.02)")
    parser.add_argument("--profile", action="store_true", help="profile one warm pass of `detected` (cProfile)")
    args = parser.parse_args()

    start = time.process_time()
    themed = matcher()
    compile_ms = (time.process_time() - start) * 1e3
    terms = sum(len(words) for theme in themed.themes for words in theme.terms.values())
    batch = comments(args.comments, args.seed)
    words = {word for text, _ in batch for word in text.split()}
    print(f"{len(themed.themes)} themes, {terms} terms in {', '.join(themed.languages)}; compiled in {compile_ms:.1f} ms CPU")
    print(
        f"{len(batch):,} comments, {sum(len(text) for text, _ in batch) / len(batch):.0f} characters on average, ~{len(words):,} distinct words"
    )

    mentioned = sum(bool(themed.match(text)) for text, _ in batch) / len(batch)
    print(f"comments that mention a theme: {mentioned:.0%}")
    for given in (True, False):
        cold = cpu_us(matcher(), batch, given)
        warm = [cpu_us(themed, batch, given) for _ in range(args.repeat)]
        label = "given   " if given else "detected"
        print(
            f"{label}: {min(warm):5.2f} µs per answer warm (best of {args.repeat}; all: {', '.join(f'{w:.2f}' for w in warm)}), {cold:5.2f} cold"
        )
    typos = comments(args.comments, args.seed + 1, args.new_words)
    for given in (True, False):
        label = "given   " if given else "detected"
        print(f"{label}, {args.new_words:.0%} of words new (typos): {cpu_us(themed, typos, given):5.2f} µs per answer")

    remembering, repeats = matcher(REMEMBERED), batch[: REMEMBERED // 4]  # comments that come back, all remembered
    for given in (True, False):
        cpu_us(remembering, repeats, given)  # the first pass remembers
        label = "given   " if given else "detected"
        repeat = min(cpu_us(remembering, repeats, given) for _ in range(args.repeat))
        print(f"{label}, a repeated short comment (remembered, as the worker does): {repeat:5.2f} µs per answer")

    fresh = StemCache("de")
    words_de = [f"verspätungsfall{n}x" for n in range(2000)]
    start = time.process_time()
    for word in words_de:
        fresh[word]
    backend = type(fresh._stemmer).__module__
    print(f"one new word stemmed (German, uncached, {backend}): {(time.process_time() - start) / len(words_de) * 1e6:.1f} µs")

    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        cpu_us(themed, batch, False)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(12)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
