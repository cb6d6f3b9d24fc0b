"""The pure-stdlib core against the spec's vectors (packages/core/test/vectors), the same contract
that binds @tracemark/core and the reference implementation."""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
import unittest

from _vectors import relative_error, vectors

from tracemark import (
    KeyFileError,
    Scheme,
    WatermarkKey,
    Watermarker,
    detect,
    load_key_file,
    parse_key_file,
    serialize_key_file,
)
from tracemark._siphash import siphash24
from tracemark.detect import window_count, window_scan
from tracemark.keys import derive_prf_keys, derive_subkey_secret, key_id_of
from tracemark.statistics import (
    holm_adjust_log10,
    log10_binomial_cdf,
    log10_binomial_sf,
    log10_normal_sf,
)


class SipHashAndKeys(unittest.TestCase):
    def test_siphash_vectors(self) -> None:
        cases = vectors("siphash")
        self.assertGreater(len(cases), 64)
        for c in cases:
            got = siphash24(bytes.fromhex(c["key"]), bytes.fromhex(c["message"]))
            self.assertEqual(f"{got:016x}", c["output"], c)

    def test_key_ids_subkeys_and_prf_keys(self) -> None:
        for c in vectors("keys"):
            secret = bytes.fromhex(c["secret"])
            self.assertEqual(key_id_of(secret), c["keyId"])
            prf = derive_prf_keys(secret)
            self.assertEqual(prf.context.hex(), c["kContext"])
            self.assertEqual(prf.green.hex(), c["kGreen"])
            self.assertEqual(prf.rank.hex(), c["kRank"])
            for sub in c["subkeys"]:
                derived = derive_subkey_secret(secret, sub["label"])
                self.assertEqual(derived.hex(), sub["secret"])
                self.assertEqual(key_id_of(derived), sub["keyId"])

    def test_green_and_seed_vectors(self) -> None:
        for c in vectors("green"):
            key = WatermarkKey.create(bytes.fromhex(c["secret"]), Scheme(gamma=c["gamma"]))
            w = Watermarker(key)
            seed = int(c["seed"], 16)
            self.assertEqual(key.scheme.threshold, c["tau"])
            self.assertEqual(w.green_value(seed, c["token"]), c["u"])
            self.assertEqual(w.is_green(seed, c["token"]), c["green"])
        for c in vectors("seeds"):
            w = Watermarker(WatermarkKey.create(bytes.fromhex(c["secret"]), Scheme(c["scheme"], c["contextWidth"])))
            got = [w.seed_at(c["tokens"], i) for i in range(len(c["tokens"]))]
            self.assertEqual([None if s is None else f"{s:016x}" for s in got], c["seeds"])
            if "ranks" in c:
                self.assertEqual([f"{w.rank(t):016x}" for t in c["tokens"]], c["ranks"])


class KeyFiles(unittest.TestCase):
    def setUp(self) -> None:
        self.secret = bytes(range(100, 132))
        self.key = WatermarkKey.create(self.secret, Scheme("selfhash", 4, 0.5, 3.0))

    def test_round_trip_and_file_mode(self) -> None:
        text = serialize_key_file(self.key)
        self.assertEqual(parse_key_file(text), self.key)
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "k.json")
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            self.assertEqual(load_key_file(path).key_id, self.key.key_id)
            with self.assertRaises(KeyFileError) as missing:
                load_key_file(os.path.join(directory, "absent.json"))
            self.assertIn("cannot read key file", str(missing.exception))

    def test_rejections_never_show_the_secret(self) -> None:
        record = json.loads(serialize_key_file(self.key))
        secret_hex = record["secret"]
        bad = [
            ("not json", "not valid JSON"),
            ("[]", "expected a JSON object"),
            (json.dumps({**record, "format": "x"}), '"format"'),
            (json.dumps({**record, "version": 2}), '"version"'),
            (json.dumps({**record, "secret": secret_hex.upper()}), '"secret"'),
            (json.dumps({**record, "keyId": "tmk1_000000000000000000000000"}), '"keyId"'),
            (json.dumps({**record, "scheme": {**record["scheme"], "gamma": 1.5}}), "scheme.gamma"),
            (json.dumps({**record, "scheme": {**record["scheme"], "contextWidth": 17}}), "scheme.contextWidth"),
            (json.dumps({**record, "scheme": {**record["scheme"], "name": "minhash"}}), "scheme.name"),
            (json.dumps({**record, "scheme": {**record["scheme"], "delta": 40}}), "scheme.delta"),
            (json.dumps({**record, "tokenizer": 3}), "tokenizer"),
        ]
        for text, fragment in bad:
            with self.assertRaises(KeyFileError) as caught:
                parse_key_file(text)
            self.assertIn(fragment, str(caught.exception))
            self.assertNotIn(secret_hex, str(caught.exception))
        self.assertNotIn(secret_hex, repr(self.key))
        self.assertNotIn(secret_hex, repr(Watermarker(self.key)))
        self.assertNotIn(self.secret.hex(), repr(self.key.prf_keys()))


class Statistics(unittest.TestCase):
    def test_binomial_tails_against_mpmath(self) -> None:
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "packages", "core", "test", "vectors", "stats.json")) as f:
            stats = json.load(f)
        for c in stats["binomialTail"]:
            got = log10_binomial_sf(c["k"], c["n"], c["p"])
            if c["log10Sf"] == 0:
                self.assertAlmostEqual(got, 0, places=12)
            else:
                self.assertLess(relative_error(got, c["log10Sf"]), 1e-9, c)
        for c in stats["binomialCdf"]:
            got = log10_binomial_cdf(c["k"], c["n"], c["p"])
            if c["log10Cdf"] == 0:
                self.assertAlmostEqual(got, 0, places=12)
            else:
                self.assertLess(relative_error(got, c["log10Cdf"]), 1e-9, c)
        for c in stats["normalTail"]:
            self.assertLess(relative_error(log10_normal_sf(c["z"]), c["log10Sf"]), 1e-12, c)
        # Finite far below the smallest double.
        self.assertLess(log10_binomial_sf(100_000, 100_000, 0.25), -60_000)

    def test_holm_vectors(self) -> None:
        for c in vectors("holm"):
            got = holm_adjust_log10(c["log10P"])
            for a, b in zip(got, c["log10PAdjusted"]):
                self.assertLess(abs(a - b), 1e-12 * max(1, abs(b)), c)


class Detection(unittest.TestCase):
    def test_detect_vectors(self) -> None:
        cases = vectors("detect")
        self.assertGreater(len(cases), 50)
        for c in cases:
            s = c["scheme"]
            key = WatermarkKey.create(bytes.fromhex(c["secret"]), Scheme(s["name"], s["contextWidth"], s["gamma"]))
            w = Watermarker(key, special_token_ids=c["special"])
            d = detect(c["tokens"], w, prompt=c["prompt"])
            r = d.results[0]
            self.assertEqual(r.status, c["status"], c["name"])
            self.assertEqual((r.num_tokens, r.num_scored, r.num_green), (c["numTokens"], c["numScored"], c["numGreen"]))
            self.assertEqual(r.gamma, c["gammaEff"])
            self.assertLess(abs(r.z - c["z"]), 1e-12 * max(1, abs(c["z"])), c["name"])
            if c["log10P"] == 0:
                self.assertAlmostEqual(r.log10_p, 0, places=13)
            else:
                self.assertLess(relative_error(r.log10_p, c["log10P"]), 1e-9, c["name"])

    def test_window_vectors(self) -> None:
        for c in vectors("windows"):
            bits = [int(b) for b in c["bits"]]
            scan = window_scan(bits, Scheme(gamma=c["gamma"]).gamma_effective, c["minWindow"])
            self.assertEqual(scan.windows_searched, c["windowsSearched"], c["name"])
            self.assertEqual(window_count(len(bits), c["minWindow"]), c["windowsSearched"], c["name"])
            best = c["best"]
            self.assertEqual((scan.start, scan.length, scan.num_green), (best["start"], best["length"], best["numGreen"]))
            self.assertLess(abs(scan.log10_p - best["log10P"]), 1e-9 * max(1, abs(best["log10P"])), c["name"])
            self.assertLess(abs(scan.log10_p_corrected - c["log10PCorrected"]), 1e-9 * max(1, abs(c["log10PCorrected"])))

    def test_verdicts(self) -> None:
        key = WatermarkKey.create(bytes(32))
        w = Watermarker(key)
        self.assertEqual(detect([], w).verdict, "insufficient")
        # A sequence where every scored token is green is watermarked; tokens chosen by the key.
        tokens = [1000]
        while len(tokens) < 80:
            tokens.append(next(t for t in range(tokens[-1] + 1, 10**6) if w.candidate_green(tokens, t) == 1))
        found = detect(tokens, w)
        self.assertEqual(found.verdict, "watermarked")
        self.assertEqual(found.results[0].num_green, found.results[0].num_scored)
        self.assertEqual(found.tokens_to_settle, 0)
        red = [1000]
        while len(red) < 400:
            red.append(next(t for t in range(red[-1] + 1, 10**6) if w.candidate_green(red, t) == 0))
        self.assertEqual(detect(red, w).verdict, "not_watermarked")
        short = detect(red[:5], w)
        self.assertEqual(short.verdict, "insufficient")
        self.assertGreater(short.tokens_to_settle, 0)
        self.assertTrue(math.isfinite(short.tokens_to_settle))
        # δ = 0: g₁ undefined, never not_watermarked, tokensToSettle none.
        flat = detect(red, WatermarkKey.create(bytes(32), Scheme(delta=0)))
        self.assertEqual(flat.verdict, "insufficient")
        self.assertTrue(math.isinf(flat.tokens_to_settle))
        self.assertIsNone(flat.to_json()["tokensToSettle"])
        # Two keys: Holm, and the matched key is the one that marked the text.
        other = WatermarkKey.create(bytes([7]) * 32)
        both = detect(tokens, [other, key])
        self.assertEqual((both.verdict, both.matched_key_id, both.keys_tested), ("watermarked", key.key_id, 2))
        self.assertAlmostEqual(both.results[1].log10_p_adjusted, min(0, both.results[1].log10_p + math.log10(2)))


if __name__ == "__main__":
    unittest.main()
