"""Language models: the GPT, sequence log-probabilities, SFT, DPO (loss, data, HF models, bar)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from mlzoo.base.errors import ZooError
from mlzoo.data.text_pairs import TextPairsDataModule, read_jsonl
from mlzoo.lm.arithmetic import ArithmeticTask
from mlzoo.lm.sequences import pack, sample, sequence_logprob
from mlzoo.lm.tokenizer import CharTokenizer
from mlzoo.models.dpo import dpo_loss
from mlzoo.nets.gpt import GPT

TOK = CharTokenizer()


def test_gpt_is_causal() -> None:
    torch.manual_seed(0)
    gpt = GPT(TOK.vocab_size, max_len=16, dim=32, layers=2, heads=4).eval()
    ids = torch.randint(3, TOK.vocab_size, (2, 10))
    changed = ids.clone()
    changed[:, 6:] = 5  # the future must not change the past
    torch.testing.assert_close(gpt(changed)[:, :6], gpt(ids)[:, :6])
    assert not torch.allclose(gpt(changed)[:, 6:], gpt(ids)[:, 6:])
    with pytest.raises(ValueError, match="longer than max_len"):
        gpt(torch.zeros(1, 17, dtype=torch.long))


def test_sequence_logprob_sums_the_response_tokens_only() -> None:
    torch.manual_seed(0)
    gpt = GPT(TOK.vocab_size, max_len=16, dim=32, layers=1, heads=2).eval()
    ids, mask = pack(TOK, ["12+3=", "1+1="], ["15", "2"])
    assert ids[1].tolist() == [TOK.bos_id, *TOK.encode("1+1=2"), TOK.eos_id] + [TOK.pad_id] * 2
    assert mask[1].tolist() == [False] * 5 + [True, True, False, False]  # "2" and eos
    logp = torch.log_softmax(gpt(ids), -1)
    expected = [
        sum(float(logp[b, t - 1, ids[b, t]]) for t in range(ids.shape[1]) if mask[b, t])
        for b in range(2)
    ]
    torch.testing.assert_close(sequence_logprob(gpt, ids, mask), torch.tensor(expected))


def test_sampling_stops_at_eos_keeps_order_and_greedy_is_deterministic() -> None:
    torch.manual_seed(0)
    gpt = GPT(TOK.vocab_size, max_len=16, dim=32, layers=1, heads=2).eval()
    prompts = ["1+1=", "12+30=", "2+2="]  # two lengths: batched separately, order kept
    a = sample(gpt, TOK, prompts, max_new_tokens=4, temperature=0)
    assert a == sample(gpt, TOK, prompts, max_new_tokens=4, temperature=0)
    assert len(a) == 3 and all(len(r) <= 4 for r in a)
    with torch.no_grad():
        gpt.head.weight.zero_()  # tied: also zeroes the token embeddings
    gpt.ln.bias.data[TOK.eos_id] = 0  # no effect on a bias-free head: all logits equal
    assert all(isinstance(r, str) for r in sample(gpt, TOK, prompts, 3, temperature=1.0))


def test_dpo_loss_matches_hand_computed_values() -> None:
    pw, pl, rw, rl = (torch.tensor([v]) for v in (-1.0, -3.0, -2.0, -2.0))
    # h = (pw - rw) - (pl - rl) = 1 - (-1) = 2; beta 0.5: beta h = 1
    loss, r_w, r_l = dpo_loss(pw, pl, rw, rl, beta=0.5)
    torch.testing.assert_close(loss, torch.tensor([math.log(1 + math.exp(-1))]))
    torch.testing.assert_close((r_w, r_l), (torch.tensor([0.5]), torch.tensor([-0.5])))
    smooth, _, _ = dpo_loss(pw, pl, rw, rl, beta=0.5, label_smoothing=0.1)
    expected = 0.9 * math.log(1 + math.exp(-1)) + 0.1 * math.log(1 + math.exp(1))
    torch.testing.assert_close(smooth, torch.tensor([expected]))
    ipo, _, _ = dpo_loss(pw, pl, rw, rl, beta=0.5, loss_type="ipo_sum")  # (h - 1/(2 beta))^2
    torch.testing.assert_close(ipo, torch.tensor([1.0]))
    n_w, n_l = torch.tensor([2.0]), torch.tensor([4.0])  # per token: h_tok = 1/2 + 1/4
    ipo, _, _ = dpo_loss(
        pw, pl, rw, rl, beta=0.5, loss_type="ipo", chosen_tokens=n_w, rejected_tokens=n_l
    )
    torch.testing.assert_close(ipo, torch.tensor([0.0625]))
    robust, _, _ = dpo_loss(pw, pl, rw, rl, beta=0.5, loss_type="robust", label_smoothing=0.1)
    expected = (0.9 * math.log(1 + math.exp(-1)) - 0.1 * math.log(1 + math.exp(1))) / 0.8
    torch.testing.assert_close(robust, torch.tensor([expected]))
    same = torch.randn(8)
    at_init, _, _ = dpo_loss(same, same - 1, same, same - 1, beta=0.1)
    torch.testing.assert_close(at_init, torch.full((8,), math.log(2)))


def test_arithmetic_task_scores_and_splits() -> None:
    task = ArithmeticTask(p_correct=0.3)
    assert task.score("07+05=", "12") == 0 and task.score("07+05=", "9") == -3
    assert task.score("07+05=", "x") == -100 and task.score("07+05=", "") == -100
    splits = {s: set(task.prompts(s)) for s in ("train", "val", "test")}
    assert sum(map(len, splits.values())) == 10_000
    assert not (splits["train"] & splits["test"]) and not (splits["train"] & splits["val"])
    demos = task.sft_examples("train", 2000, seed=0)
    right = sum(task.score(d["prompt"], d["response"]) == 0 for d in demos) / 2000
    assert 0.26 < right < 0.34
    for pair in task.preference_pairs("train", 200, seed=0):
        p = pair["prompt"]
        assert task.score(p, pair["chosen"]) > task.score(p, pair["rejected"])


def test_jsonl_data_in_trl_shapes_and_clear_errors(tmp_path: Path) -> None:
    prefs = tmp_path / "prefs.jsonl"
    rows = [{"prompt": f"q{i}", "chosen": "good", "rejected": "bad"} for i in range(20)]
    prefs.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    dm = TextPairsDataModule(kind="preference", source=str(prefs), batch_size=4)
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"prompt", "chosen", "rejected"} and len(batch["prompt"]) == 4
    sft = tmp_path / "sft.jsonl"
    sft.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    assert read_jsonl(sft, "sft") == [{"prompt": "a", "response": "b", "_where": f"{sft}:1"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(ZooError, match=r"bad.jsonl:2: not JSON"):
        read_jsonl(bad, "preference")
    bad.write_text(json.dumps({"prompt": "a", "chosen": "b"}) + "\n")
    with pytest.raises(ZooError, match=r"bad.jsonl:1: .*prompt, chosen, rejected"):
        read_jsonl(bad, "preference")
    with pytest.raises(ZooError, match="no file"):
        read_jsonl(tmp_path / "missing.jsonl", "sft")


def test_jsonl_lines_python_cannot_parse_are_named_by_file_and_line(tmp_path: Path) -> None:
    """json.loads raises RecursionError (thousands of nested brackets) and ValueError (an
    integer over Python's 4,300 digits) besides JSONDecodeError: each is a bad line, file:line,
    as every other, and the good lines around them do not hide it."""
    good = json.dumps({"prompt": "a", "completion": "b"})
    deep = tmp_path / "deep.jsonl"
    deep.write_text(f"{good}\n{'[' * 200_000}\n{good}\n")
    with pytest.raises(ZooError) as caught:
        read_jsonl(deep, "sft")
    assert str(caught.value) == f"data.source: {deep}:2: JSON nested too deeply to read"
    big = tmp_path / "big.jsonl"
    big.write_text(f'{good}\n{good}\n{{"prompt": {"9" * 5000}, "completion": "b"}}\n')
    with pytest.raises(ZooError) as caught:
        read_jsonl(big, "sft", "data.val_path")
    message = str(caught.value)
    assert message.startswith(f"data.val_path: {big}:3: unreadable JSON (Exceeds the limit")
    assert "\n" not in message and "set_int_max_str_digits" not in message


@pytest.mark.parametrize(
    "kwargs",
    [{"batch_size": 0}, {"num_train": 0}, {"num_test": -1}, {"val_fraction": 1.5}],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()),
)
def test_text_pairs_arguments_are_named_with_their_data_key(kwargs: dict) -> None:
    with pytest.raises(ZooError, match=rf"^data\.{next(iter(kwargs))} must be"):
        TextPairsDataModule(**kwargs)


def test_dpo_starts_at_ln2_and_precomputed_reference_gives_the_same_loss(run) -> None:
    import mlzoo
    from mlzoo.models.dpo import DPOModule

    sft = mlzoo.load(run(["model=sft", "trainer=debug"])["best_checkpoint"])
    dpo = DPOModule(lambda p: torch.optim.SGD(p, lr=0.1), policy=sft.lm, tokenizer=sft.tokenizer)
    task = ArithmeticTask()
    batch = {
        k: [r[k] for r in task.preference_pairs("val", 16, 0)]
        for k in ("prompt", "chosen", "rejected")
    }
    dpo.eval()
    pi = dpo._pair_logprobs(dpo.policy, batch)
    ref = dpo._pair_logprobs(dpo.reference, batch)
    loss, _, _ = dpo_loss(*pi, *ref, beta=0.1)
    assert abs(float(loss.mean()) - math.log(2)) < 1e-4
    # precomputed log pi_ref: the same numbers as computing them in the step
    dpo.hparams.precompute_reference = True
    dpo._ref_cache = {
        k: (c, r)
        for k, c, r in zip(
            zip(batch["prompt"], batch["chosen"], batch["rejected"], strict=True),
            ref[0].tolist(),
            ref[1].tolist(),
            strict=True,
        )
    }
    dpo.train()
    cached = dpo._reference_logprobs(batch)
    torch.testing.assert_close(cached, ref)


def test_sft_and_dpo_on_jsonl_files(tmp_path: Path, run) -> None:
    sft = tmp_path / "sft.jsonl"
    sft.write_text(
        "\n".join(json.dumps({"prompt": f"say {c}: ", "completion": c}) for c in "abcdefghij")
    )
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(
        "\n".join(
            json.dumps({"prompt": f"say {c}: ", "chosen": c, "rejected": c.upper()})
            for c in "abcdefghij"
        )
    )
    s = run(["model=sft", "data=jsonl", f"data.source={sft}", "trainer=debug"])
    assert s["data"] == "jsonl" and math.isfinite(s["metrics"]["test/loss"])
    d = run(["model=dpo", "data=jsonl", f"data.source={prefs}", "trainer=debug"])
    assert d["monitor"]["metric"] == "val/loss"  # no ground truth: tuned/dpo_jsonl.yaml
    assert {"test/loss", "test/reward_accuracy", "test/kl"} <= d["metrics"].keys()


def test_sft_and_dpo_run_with_a_tiny_hugging_face_gpt2(tmp_path: Path, run) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=TOK.vocab_size, n_positions=32, n_embd=32, n_layer=2, n_head=2
    )
    folder = tmp_path / "tiny-gpt2"
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)  # random weights, no download
    sft = run(["model=sft", f"model.policy={folder}", "trainer=debug"])
    assert math.isfinite(sft["metrics"]["test/loss"])
    dpo = run(["model=dpo", f"model.sft_checkpoint={sft['best_checkpoint']}", "trainer=debug"])
    assert {"test/win_rate", "test/kl", "test/reward_accuracy"} <= dpo["metrics"].keys()
    # a few greedy answers per validation in the Text tab: SFT's, DPO's beside the reference's
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for summary, columns in (
        (sft, "| prompt | answer |"),
        (dpo, "| prompt | policy | reference |"),
    ):
        events = EventAccumulator(summary["run_dir"])
        events.Reload()
        texts = events.PluginTagToContent("text")
        [tag] = [t for t in texts if t.startswith("val/samples")]
        table = events.Tensors(tag)[-1].tensor_proto.string_val[0].decode()
        assert table.startswith(columns) and table.count("\n") >= 3, table


def test_a_hugging_face_tokenizer_with_its_model(tmp_path: Path, run) -> None:
    """model.tokenizer=hf: the policy folder's own tokenizer (here a character-level one built
    with the tokenizers library and saved beside a tiny GPT-2: nothing is downloaded)."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    from mlzoo.lm.tokenizer import HFTokenizer

    vocab = {c: i for i, c in enumerate(["<pad>", "<eos>", *ArithmeticTask.ALPHABET])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    folder = tmp_path / "tiny-gpt2"
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>"
    ).save_pretrained(folder)
    config = transformers.GPT2Config(
        vocab_size=len(vocab), n_positions=32, n_embd=32, n_layer=2, n_head=2, eos_token_id=1
    )
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    hf = HFTokenizer(str(folder))
    assert hf.decode(hf.encode("12+34=46")) == "12+34=46" and hf.eos_id == 1
    sft = run(["model=sft", f"model.policy={folder}", "model.tokenizer=hf", "trainer=debug"])
    assert math.isfinite(sft["metrics"]["test/loss"]) and "test/correct" in sft["metrics"]


def test_dpo_needs_an_sft_checkpoint(tmp_path: Path, run) -> None:
    with pytest.raises(ZooError, match="no checkpoint of a sft-arithmetic run"):
        run(["model=dpo", "trainer=debug"], tmp_path / "empty")


@pytest.mark.slow
def test_dpo_beats_its_sft_reference_on_arithmetic(run) -> None:
    """SFT on demonstrations that are right 30% of the time (else off by 10), then DPO on pairs
    ranked by the ground truth: on held-out prompts the DPO policy's samples beat the SFT
    reference's >= 75% of the time (ties count half), with the KL to the reference reported."""
    sft = run(["model=sft", "logger=none"])
    assert 0.15 < sft["metrics"]["test/correct"] < 0.5, sft["metrics"]
    dpo = run(["model=dpo", "logger=none"])
    m = dpo["metrics"]
    assert m["test/win_rate"] >= 0.75, m
    assert m["test/correct"] > m["test/reference_correct"] + 0.4, m
    assert 0 < m["test/kl"] < 20, m
