"""The Gumbel-max schemes (docs/spec/watermark-gumbel.md) in the pure-stdlib core against
packages/core/test/vectors/gumbel.json (generate_gumbel_vectors.py: tracemark_ref.py and mpmath),
the contract that binds @tracemark/core too."""

from __future__ import annotations

import json
import math
import random
import struct
import unittest

from _vectors import relative_error, vector_file

from tracemark import (
    KeyFileError,
    Scheme,
    WatermarkKey,
    Watermarker,
    detect,
    gumbel_choice,
    gumbel_token,
    kept_candidates,
    parse_key_file,
    serialize_key_file,
)
from tracemark._siphash import siphash24
from tracemark.detect import window_count
from tracemark.gamma_tail import log10_gamma_sf, log10_weighted_gamma_sf, log_weighted_gamma_sf
from tracemark.gumbel import GUMBEL_NOISE_MAX, gumbel_score, gumbel_window_scan, uniform_of_word
from tracemark.keys import derive_gumbel_prf_keys

DATA = vector_file("gumbel")


def close(got: float, want: float, relative: float) -> bool:
    """Scores go through the platform's log1p, which may differ from the generator's in the last
    bit (uniforms, seeds and tokens are exact everywhere)."""
    return abs(got - want) <= relative * abs(want)


def watermarker(secret: str, name: str, width: int, alpha: float = 0.1, special: list[int] | None = None) -> Watermarker:
    scheme = Scheme(name, width, alpha=alpha if name == "dual_gumbel" else None)
    return Watermarker(WatermarkKey.create(bytes.fromhex(secret), scheme), special_token_ids=special or [])


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


class UniformsAndChoices(unittest.TestCase):
    def test_noise_bound_keys_and_words(self) -> None:
        self.assertEqual(GUMBEL_NOISE_MAX, DATA["noiseMax"])
        for c in DATA["keys"]:
            keys = derive_gumbel_prf_keys(bytes.fromhex(c["secret"]))
            self.assertEqual((keys.a.hex(), keys.b.hex()), (c["keyA"], c["keyB"]))
        for c in DATA["words"]:
            self.assertEqual(uniform_of_word(int(c["word"], 16)), c["uniform"], c)

    def test_uniforms_and_scores_bit_for_bit(self) -> None:
        self.assertGreaterEqual(len(DATA["uniforms"]), 30)
        for c in DATA["uniforms"]:
            seed = int(c["seed"], 16)
            dual = watermarker(c["secret"], "dual_gumbel", 1)
            for key, word, uniform, score in ((0, "wordA", "uniformA", "scoreA"), (1, "wordB", "uniformB", "scoreB")):
                self.assertEqual(f"{dual.gumbel_word(seed, c['token'], key):016x}", c[word])
                self.assertEqual(dual.uniform(seed, c["token"], key), c[uniform])
                self.assertTrue(close(gumbel_score(c[uniform]), c[score], 1e-15), c)
            single = watermarker(c["secret"], "gumbel", 1)
            self.assertTrue(close(single.token_score(seed, c["token"]), c["scoreA"], 1e-15), c)
            self.assertTrue(close(dual.token_score(seed, c["token"]), 0.9 * c["scoreA"] + 0.1 * c["scoreB"], 1e-15), c)
            with self.assertRaises(ValueError):
                single.uniform(seed, c["token"], 1)  # a gumbel key has no key B

    def test_keyed_choices(self) -> None:
        cases = DATA["sampling"]
        self.assertGreaterEqual(len(cases), 40)
        unmarked = 0
        for i, c in enumerate(cases):
            w = watermarker(c["secret"], c["scheme"], c["contextWidth"], special=c["special"])
            logits = [-math.inf if v is None else v for v in c["logits"]]
            self.assertEqual(kept_candidates(logits, c["temperature"], c["topK"], c["topP"]), c["kept"], i)
            seed = w.context_seed(c["context"])
            self.assertEqual(None if seed is None else f"{seed:016x}", c["seed"], i)
            token = gumbel_token(w, c["context"], logits, c["temperature"], c["topK"], c["topP"], c["key"])
            self.assertEqual(token, c["token"], i)
            unmarked += token is None
        self.assertGreater(unmarked, 0)  # the vectors hold unmarked steps too

    def test_generations(self) -> None:
        for c in DATA["generation"]:
            w = watermarker(c["secret"], c["scheme"], c["contextWidth"], alpha=c["alpha"] or 0.1)
            model_key = bytes.fromhex(c["modelKey"])
            context = list(c["prompt"])
            for _ in range(len(c["tokens"])):
                prev = struct.pack("<I", context[-1])
                logits = [
                    f32(6.0 * (siphash24(model_key, prev + struct.pack("<I", x)) >> 40) / 2**24)
                    for x in range(c["vocabulary"])
                ]
                token = gumbel_token(w, context, logits, c["temperature"], c["topK"], c["topP"], c["key"])
                self.assertIsNotNone(token)
                context.append(token)
            self.assertEqual(context[len(c["prompt"]) :], c["tokens"])

    def test_lazy_choice_equals_full_evaluation(self) -> None:
        rng = random.Random(3)
        w = watermarker(bytes(range(32)).hex(), "gumbel", 2)
        for trial in range(300):
            n = rng.choice([1, 2, 5, 50])
            tokens = rng.sample(range(1000), n)
            logits = [f32(rng.uniform(-60, 10)) for _ in range(n)]
            temperature = rng.choice([0.05, 0.7, 1.0, 3.0])
            seed = rng.getrandbits(64)
            calls: list[int] = []

            def uniform_of(t: int, seed: int = seed) -> float:
                calls.append(t)
                return w.uniform(seed, t)

            index, evaluated = gumbel_choice(tokens, logits, temperature, uniform_of)
            top = max(logits)
            full = [(v - top) / temperature - (math.inf if w.uniform(seed, t) == 0 else math.log(-math.log(w.uniform(seed, t)))) for t, v in zip(tokens, logits)]
            expected = max(range(n), key=lambda j: (full[j], -tokens[j]))
            self.assertEqual(index, expected, trial)
            self.assertEqual(evaluated, len(calls))

    def test_choice_is_distortion_free(self) -> None:
        # Over independent seeds each candidate wins with its probability (5 standard deviations).
        w = watermarker((bytes([7]) * 32).hex(), "gumbel", 1)
        logits = [f32(v) for v in (2.0, 1.0, 0.5, 0.0, -1.0)]
        tokens = [3, 17, 4, 99, 8]
        temperature = 0.8
        weights = [math.exp((v - max(logits)) / temperature) for v in logits]
        p = [x / sum(weights) for x in weights]
        draws = 6000
        counts = [0] * 5
        for seed in range(draws):
            counts[gumbel_choice(tokens, logits, temperature, lambda t, s=seed: w.uniform(s, t))[0]] += 1
        for count, px in zip(counts, p):
            self.assertLess(abs(count - draws * px), 5 * math.sqrt(draws * px * (1 - px)), (counts, p))


class Tails(unittest.TestCase):
    def test_gamma_tails_against_mpmath(self) -> None:
        cases = DATA["tails"]["gumbel"]
        self.assertTrue(any(c["log10Sf"] < -30000 for c in cases))
        for c in cases:
            got = log10_gamma_sf(c["n"], c["score"])
            self.assertLess(relative_error(got, c["log10Sf"]), 1e-10, (c, got))

    def test_dual_tails_against_mpmath(self) -> None:
        cases = DATA["tails"]["dual"]
        self.assertTrue(any(c["log10Sf"] < -1000 for c in cases))
        for c in cases:
            got = log10_weighted_gamma_sf(c["n"], 1 - c["alpha"], c["alpha"], c["score"])
            self.assertLess(relative_error(got, c["log10Sf"]), 1e-10, (c, got))

    def test_dual_closed_forms(self) -> None:
        # n = 1: the hypoexponential tail; α = ½: Q(2n, 2S).
        for alpha, s in ((0.1, 3.0), (0.3, 0.5), (0.9, 20.0), (0.45, 7.0)):
            a, b = max(alpha, 1 - alpha), min(alpha, 1 - alpha)
            closed = (a * math.exp(-s / a) - b * math.exp(-s / b)) / (a - b)
            got = math.exp(log_weighted_gamma_sf(1, 1 - alpha, alpha, s))
            self.assertLess(abs(got - closed) / closed, 1e-12, (alpha, s))
        for n, s in ((1, 2.0), (10, 14.0), (300, 400.0)):
            self.assertLess(relative_error(log10_weighted_gamma_sf(n, 0.5, 0.5, s), log10_gamma_sf(2 * n, 2 * s)), 1e-13)


def found_scores(w: Watermarker, c: dict) -> list[float]:
    from tracemark.detect import score

    return score(w, c["tokens"], c["prompt"], c["dedup"]).scores


class Detection(unittest.TestCase):
    def test_detection_vectors(self) -> None:
        cases = DATA["detect"]
        self.assertGreaterEqual(len(cases), 15)
        for i, c in enumerate(cases):
            w = watermarker(c["secret"], c["scheme"], c["contextWidth"], alpha=c["alpha"] or 0.1, special=c["special"])
            found = detect(c["tokens"], w, prompt=c["prompt"], dedup=c["dedup"])
            r = found.results[0]
            self.assertEqual(r.status, c["status"], i)
            self.assertEqual(r.num_scored, c["numScored"], i)
            self.assertEqual(len(r.status), len(c["status"]))
            self.assertTrue(all(close(a, b, 1e-15) for a, b in zip(found_scores(w, c), c["scores"])), i)
            self.assertTrue(close(r.score, c["score"], 1e-13), (i, r.score, c["score"]))
            self.assertLess(relative_error(r.log10_p, c["log10P"]), 1e-10, (i, r.log10_p, c["log10P"]))
            self.assertEqual(r.num_green, 0)
            self.assertTrue(math.isnan(r.green_fraction))
            printed = found.to_json()
            self.assertEqual((printed["numGreen"], printed["greenFraction"], printed["scheme"]), (None, None, c["scheme"]))
            self.assertEqual(printed["score"], r.score)
            self.assertEqual(found.verdict, "watermarked" if r.log10_p <= -4 else "insufficient", i)
            if found.verdict == "insufficient":
                self.assertEqual(found.tokens_to_settle, math.inf)
                self.assertIsNone(found.to_json()["tokensToSettle"])
            json.dumps(found.to_json(), allow_nan=False)  # valid JSON, as the CLI prints it

    def test_never_not_watermarked_and_no_alternative(self) -> None:
        key = WatermarkKey.create(bytes(32), Scheme("gumbel"))
        rng = random.Random(1)
        text = [rng.randrange(50_000) for _ in range(3000)]
        found = detect(text, key)
        self.assertEqual(found.verdict, "insufficient")  # a long null text: no amount rules a mark out
        self.assertGreater(found.results[0].log10_p, -4)
        with self.assertRaises(ValueError) as error:
            detect(text, key, alternative_green_fraction=0.5)
        self.assertIn("gumbel", str(error.exception))
        self.assertEqual(detect([], key).verdict, "insufficient")

    def test_windows_and_several_keys(self) -> None:
        key = WatermarkKey.create(bytes([5]) * 32, Scheme("dual_gumbel", 2, alpha=0.3))
        w = Watermarker(key, special_token_ids=[])
        rng = random.Random(2)
        # Human text around a marked passage: each marked token is the keyed choice among 20 equally
        # likely candidates.
        tokens = [rng.randrange(5000) for _ in range(300)]
        for i in range(120, 200):
            seed = w.context_seed(tokens[:i])
            tokens[i] = max(range(1000, 1020), key=lambda t: (w.uniform(seed, t), -t))
        found = detect(tokens, w, window=True)
        window = found.results[0].window
        self.assertEqual(found.verdict, "watermarked")
        self.assertEqual(window.windows_searched, window_count(found.results[0].num_scored))
        self.assertGreaterEqual(window.start_token, 100)
        self.assertLessEqual(window.end_token, 220)
        scan = gumbel_window_scan([1.0] * 10, key.scheme, 16)  # shorter than a window: the whole text
        self.assertEqual((scan.windows_searched, scan.length, scan.score), (1, 10, 10.0))
        self.assertAlmostEqual(window.log10_p_corrected, window.log10_p + math.log10(window.windows_searched), places=9)
        self.assertIn("score", found.to_json()["window"])
        # Holm over a Gumbel key and a green-list key.
        other = WatermarkKey.create(bytes([6]) * 32)
        both = detect(tokens, [other, key], window=True)
        self.assertEqual(both.matched_key_id, key.key_id)
        self.assertEqual(both.results[1].log10_p_adjusted, min(0.0, window.log10_p_corrected + math.log10(2)))

    def test_green_list_operations_refuse_a_gumbel_key(self) -> None:
        w = Watermarker(WatermarkKey.create(bytes(32), Scheme("gumbel")))
        for call in (lambda: w.is_green(1, 2), lambda: w.candidate_green([1, 2, 3, 4], 5), lambda: w.green_list([1, 2, 3, 4], 10)):
            with self.assertRaises(TypeError):
                call()
        with self.assertRaises(TypeError):
            Scheme("gumbel").biased_green_fraction()
        with self.assertRaises(TypeError):
            Watermarker(WatermarkKey.create(bytes(32))).context_seed([1])


class KeyFiles(unittest.TestCase):
    secret = bytes(range(100, 132))

    def file(self, scheme: dict) -> str:
        key = WatermarkKey.create(self.secret)
        record = json.loads(serialize_key_file(key))
        record["scheme"] = scheme
        return json.dumps(record)

    def test_gumbel_files(self) -> None:
        key = parse_key_file(self.file({"name": "gumbel", "contextWidth": 4}))
        self.assertEqual((key.scheme.name, key.scheme.context_width, key.scheme.alpha, key.scheme.delta), ("gumbel", 4, 0.0, 0.0))
        self.assertTrue(math.isnan(key.scheme.gamma))
        dual = parse_key_file(self.file({"name": "dual_gumbel", "contextWidth": 2, "alpha": 0.25}))
        self.assertEqual((dual.scheme.context_width, dual.scheme.alpha), (2, 0.25))
        self.assertEqual(parse_key_file(self.file({"name": "dual_gumbel"})).scheme, Scheme("dual_gumbel", 4, alpha=0.1))
        for key in (key, dual):
            again = parse_key_file(serialize_key_file(key))
            self.assertEqual(again, key)
            written = json.loads(serialize_key_file(key))["scheme"]
            self.assertNotIn("gamma", written)
            self.assertNotIn("delta", written)
            self.assertEqual("alpha" in written, key.scheme.name == "dual_gumbel")

    def test_refusals_name_the_field_never_the_secret(self) -> None:
        for scheme, field in (
            ({"name": "gumbel", "contextWidth": 4, "gamma": 0.25}, "scheme.gamma"),
            ({"name": "gumbel", "delta": 0}, "scheme.delta"),
            ({"name": "dual_gumbel", "delta": 2}, "scheme.delta"),
            ({"name": "gumbel", "alpha": 0.1}, "scheme.alpha"),
            ({"name": "dual_gumbel", "alpha": 1}, "scheme.alpha"),
            ({"name": "dual_gumbel", "alpha": 0}, "scheme.alpha"),
            ({"name": "dual_gumbel", "alpha": None}, "scheme.alpha"),
            ({"name": "dual_gumbel", "alpha": "0.1"}, "scheme.alpha"),
            ({"name": "gumbel", "contextWidth": 17}, "scheme.contextWidth"),
            ({"name": "gumbel", "contextWidth": None}, "scheme.contextWidth"),
            ({"name": "lefthash", "gamma": None}, "scheme.gamma"),
            ({"name": "gumbel_v2"}, "scheme.name"),
        ):
            with self.assertRaises(KeyFileError, msg=scheme) as error:
                parse_key_file(self.file(scheme))
            self.assertIn(field, str(error.exception))
            self.assertNotIn(self.secret.hex(), str(error.exception))

    def test_green_list_files_read_as_before(self) -> None:
        old = self.file({"name": "selfhash", "contextWidth": 3, "gamma": 0.5, "delta": 1})
        key = parse_key_file(old)
        self.assertEqual(key.scheme, Scheme("selfhash", 3, 0.5, 1))
        self.assertEqual(json.loads(serialize_key_file(key))["scheme"], {"name": "selfhash", "contextWidth": 3, "gamma": 0.5, "delta": 1})
        # Read from its four fields (as @tracemark/core's reader does); a Scheme itself refuses α.
        self.assertEqual(parse_key_file(old.replace('"delta": 1', '"delta": 1, "alpha": 0.3')).scheme.alpha, 0.0)
        with self.assertRaises(ValueError):
            Scheme("lefthash", alpha=0.1)
        self.assertEqual(parse_key_file(self.file({})).scheme, Scheme())


if __name__ == "__main__":
    unittest.main()
