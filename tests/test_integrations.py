"""The framework callbacks with the real frameworks: a LightningModule through Lightning's
Trainer, a tiny BERT through the Hugging Face Trainer; and the error without the framework."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

import nbdebug


@pytest.mark.parametrize(
    "module, blocked, extra",
    [("lightning", ["lightning"], "lightning"), ("huggingface", ["transformers"], "huggingface")],
)
def test_a_missing_framework_names_the_extra_to_install(module, blocked, extra):
    script = textwrap.dedent(f"""
        import sys
        for name in {blocked!r}:
            sys.modules[name] = None  # as if not installed
        import nbdebug.integrations
        assert not any(name in sys.modules and sys.modules[name] for name in {blocked!r})
        try:
            import nbdebug.integrations.{module}
        except ImportError as err:
            print(err)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"pip install 'nbdebug[{extra}]'" in result.stdout


def test_the_head_is_given_as_a_module_or_its_dotted_name(tiny_transformer):
    from nbdebug.integrations._common import resolve_head

    model = tiny_transformer("roberta")
    assert resolve_head(model, "classifier.out_proj") is model.classifier.out_proj
    assert resolve_head(model, model.classifier) is model.classifier
    with pytest.raises(
        ValueError, match=r"head='classifer' names no submodule of the RobertaForSequenceClassification"
    ):
        resolve_head(model, "classifer")
    with pytest.raises(TypeError, match="dotted name"):
        resolve_head(model, 3)


# ---------------------------------------------------------------- Lightning


def _lightning_module():
    L = pytest.importorskip("lightning.pytorch")

    class Classifier(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(6, 16), nn.ReLU())
            self.fc = nn.Linear(16, 3)
            self.backward_norms = []  # per step, each Linear's weight gradient norm right after backward

        def forward(self, x):
            return self.fc(self.body(x))

        def training_step(self, batch, batch_idx):
            x, y = batch
            logits = self(x)
            loss = F.cross_entropy(logits, y)
            self.log("train_acc", (logits.argmax(1) == y).float().mean(), on_step=False, on_epoch=True)
            return {"loss": loss, "logits": logits.detach()}

        def on_after_backward(self):
            self.backward_norms.append([float(m.weight.grad.norm()) for m in (self.body[0], self.fc)])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return L, Classifier()


def test_lightning_trainer_with_both_callbacks(tmp_path, blobs):
    from nbdebug.integrations.lightning import MonitorCallback, RecordCallback

    L, module = _lightning_module()
    x, y = blobs(n=96)
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=16, shuffle=True)
    captures = []  # (step, gradient norms) of every capture step the monitor measured

    class Spy(L.Callback):
        def on_train_start(self, trainer, pl_module):
            hooks = monitor_cb.monitor._hooks
            real = hooks.capture

            def capture(inputs):
                stats = real(inputs)
                captures.append((monitor_cb.monitor.step_count, stats.grad_norms))
                return stats

            hooks.capture = capture

    record_cb = RecordCallback(tmp_path / "run", head="fc", test=(x[:20], y[:20]))
    monitor_cb = MonitorCallback(loss_fn=nn.CrossEntropyLoss(), display=False)
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[record_cb, monitor_cb, Spy()],
    )
    trainer.fit(module, loader)

    run = nbdebug.load_run(tmp_path / "run")
    assert run.epochs == [0, 1, 2] and run.n_samples == 116  # train defaults to the loader's dataset
    assert all(0 <= run.metrics(e)["train_acc"] <= 1 for e in run.epochs)
    with torch.no_grad():
        reps = module.body(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run.representations(2)[:96], reps, atol=2e-2, rtol=2e-3)

    monitor = monitor_cb.monitor
    assert monitor.step_count == 18 and len(monitor.step_losses) == 18 and len(monitor.epochs) == 3
    # The first gradient statistics are step 1's, as on_after_backward saw them, not step 2's.
    step, norms = captures[0]
    assert step == 1
    np.testing.assert_allclose(norms, module.backward_norms[0], rtol=1e-5)
    assert not np.allclose(norms, module.backward_norms[1], rtol=1e-3)
    later_step, later_norms = captures[1]
    np.testing.assert_allclose(later_norms, module.backward_norms[later_step - 1], rtol=1e-5)
    assert monitor.epochs[-1]["train_acc"] == pytest.approx(float(trainer.callback_metrics["train_acc"]))


# ---------------------------------------------------------------- Hugging Face Trainer


class Tokens(Dataset):
    def __init__(self, ids, mask, labels):
        self.ids, self.mask, self.labels = ids, mask, labels

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": self.labels[i]}


@pytest.mark.parametrize("kind, head", [("bert", "classifier"), ("roberta", "classifier.out_proj")])
def test_huggingface_trainer_with_both_callbacks(tmp_path, text_task, tiny_transformer, kind, head):
    transformers = pytest.importorskip("transformers")
    from nbdebug.integrations.huggingface import MonitorCallback, RecordCallback

    ids, mask, y = text_task(n=60)
    train, test = Tokens(ids[:48], mask[:48], y[:48]), Tokens(ids[48:], mask[48:], y[48:])
    model = tiny_transformer(kind)

    def accuracy(prediction):
        return {"accuracy": float((prediction.predictions.argmax(1) == prediction.label_ids).mean())}

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=3,
        per_device_train_batch_size=16,
        learning_rate=5e-3,
        eval_strategy="epoch",
        save_strategy="no",
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    record_cb, monitor_cb = RecordCallback(tmp_path / "run", head=head, test=test), MonitorCallback()
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=test,
        compute_metrics=accuracy,
        callbacks=[record_cb, monitor_cb],
    )
    trainer.train()

    run = nbdebug.load_run(tmp_path / "run")
    assert run.epochs == [0, 1, 2] and run.n_samples == 60
    np.testing.assert_array_equal(run.labels, y.numpy())
    evaluations = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    assert [run.metrics(e)["eval_loss"] for e in run.epochs] == [entry["eval_loss"] for entry in evaluations]
    assert all("eval_accuracy" in run.metrics(e) and "loss" in run.metrics(e) for e in run.epochs)
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=ids, attention_mask=mask).logits, 1).numpy()
    np.testing.assert_allclose(run.probabilities(2), probs, atol=1e-5)

    monitor = monitor_cb.monitor
    assert monitor.step_count == trainer.state.global_step == 9
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    np.testing.assert_allclose(monitor.step_losses, logged, rtol=1e-3)  # logging_steps=1: one per step
    assert [e["val_loss"] for e in monitor.epochs] == pytest.approx([e["eval_loss"] for e in evaluations])
    assert [e["val_n"] for e in monitor.epochs] == [12, 12, 12]  # the evaluation set's size: sampling noise
    assert not model._forward_hooks  # the callback's hook is gone after training

    session = nbdebug.Session(run, projection="pca", progress=False)
    assert session.background(2, resolution=8).shape == (8, 8, 4)
