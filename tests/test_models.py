"""Models that are not tensor -> tensor: Hugging Face transformers fed mappings of tensors,
Datasets of mappings, multi-input models, outputs with .logits or in a tuple, forward=."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import nbdebug

pytest.importorskip("transformers")


class Mappings(Dataset):
    """Items as the Hugging Face datasets convention has them: one mapping per sample."""

    def __init__(self, ids, mask, labels, label_key="labels"):
        self.ids, self.mask, self.labels, self.key = ids, mask, labels, label_key

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], self.key: self.labels[i], "text": f"s{i}"}


def train_epochs(model, ids, mask, y, rec, epochs=3, lr=5e-3):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for epoch in range(epochs):
        model.train()
        for start in range(0, len(ids), 16):
            part = slice(start, start + 16)
            loss = model(input_ids=ids[part], attention_mask=mask[part], labels=y[part]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        rec.capture(epoch, metrics={"loss": losses[-1]})
    return losses


def test_bert_recorded_from_a_dict_of_tensors_opens_in_session_and_show(tmp_path, text_task, tiny_transformer):
    ids, mask, y = text_task()
    model = tiny_transformer("bert")
    inputs = {"input_ids": ids, "attention_mask": mask}
    rec = nbdebug.Recorder(
        model, head=model.classifier, path=tmp_path / "bert", train=(inputs, y), test={**inputs, "labels": y}
    )
    losses = train_epochs(model, ids, mask, y, rec)
    assert losses[-1] < losses[0]

    run = nbdebug.load_run(tmp_path / "bert")
    assert run.epochs == [0, 1, 2] and run.n_samples == 96 and run.dim == 16 and run.n_classes == 3
    model.eval()
    with torch.no_grad():
        pooled = model.bert(**inputs).pooler_output.numpy()
        probs = torch.softmax(model(**inputs).logits, 1).numpy()
    # The representation is the classifier's input (the pooled [CLS] state), the probabilities the model's.
    np.testing.assert_allclose(run.representations(2)[:48], pooled, atol=2e-3)
    np.testing.assert_allclose(run.probabilities(2)[48:], probs, atol=1e-5)
    assert run.info["head"]["path"] == "classifier" and run.info["head"]["spec"]["type"] == "Linear"

    widget = nbdebug.show(run, recommendations=5).wait()
    assert widget.session.embedding.shape == (3, 96, 2)
    assert widget.session.background(2, resolution=16).shape == (16, 16, 4)
    assert len(widget.session.recommend(k=5)) == 5


def test_roberta_from_a_dataset_of_mappings(tmp_path, text_task, tiny_transformer):
    ids, mask, y = text_task()
    model = tiny_transformer("roberta")
    data = Mappings(ids, mask, y)
    # RoBERTa's classifier takes the (batch, seq, hidden) states: refused, with the module that works.
    with pytest.raises(ValueError, match=r"takes input of shape \(2, 8, 16\).*pass head=model.classifier.out_proj"):
        nbdebug.Recorder(model, head=model.classifier, path=tmp_path / "refused", train=data)
    assert not (tmp_path / "refused").exists()  # refused before anything was written

    rec = nbdebug.Recorder(
        model,
        head=model.classifier.out_proj,
        path=tmp_path / "roberta",
        train=data,
        test=Mappings(ids[:10], mask[:10], y[:10], label_key="label"),
        batch_size=20,
    )
    train_epochs(model, ids, mask, y, rec, epochs=2)
    run = nbdebug.load_run(tmp_path / "roberta")
    assert run.epochs == [0, 1] and run.dim == 16
    np.testing.assert_array_equal(run.labels, np.concatenate([y, y[:10]]))
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    np.testing.assert_allclose(run.probabilities(1)[:48], torch.softmax(logits, 1).numpy(), atol=1e-5)
    session = nbdebug.Session(run, projection="pca", progress=False)
    assert session.background(1, resolution=8).shape == (8, 8, 4)


@pytest.mark.parametrize("kind, head", [("bert", "classifier"), ("roberta", "classifier.out_proj")])
def test_a_dict_of_tensors_and_a_dataset_of_mappings_record_the_same(tmp_path, text_task, tiny_transformer, kind, head):
    ids, mask, y = text_task(n=30)
    model = tiny_transformer(kind)
    module = model.get_submodule(head)
    for name, train in (("dict", ({"input_ids": ids, "attention_mask": mask}, y)), ("dataset", Mappings(ids, mask, y))):
        nbdebug.Recorder(model, head=module, path=tmp_path / name, train=train, batch_size=8).capture(0)
    by_dict, by_dataset = nbdebug.load_run(tmp_path / "dict"), nbdebug.load_run(tmp_path / "dataset")
    np.testing.assert_array_equal(by_dict.labels, by_dataset.labels)
    np.testing.assert_allclose(by_dict.representations(0), by_dataset.representations(0), atol=1e-3)
    np.testing.assert_allclose(by_dict.probabilities(0), by_dataset.probabilities(0), atol=1e-6)
    assert nbdebug.Session(by_dataset, projection="pca", progress=False).embedding.shape == (1, 30, 2)


class TwoInputs(nn.Module):
    """A multi-input model that returns (logits, features), as many research models do."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(3, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, a, b):
        features = torch.relu(self.a(a) + self.b(b))
        return self.head(features), features


class Pairs(Dataset):
    def __init__(self, a, b, y):
        self.a, self.b, self.y = a, b, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return (self.a[i], self.b[i]), int(self.y[i])


def test_tuple_inputs_and_tuple_outputs(tmp_path):
    torch.manual_seed(0)
    a, b, y = torch.randn(30, 4), torch.randn(30, 3), torch.randint(0, 3, (30,))
    model = TwoInputs()
    nbdebug.Recorder(model, head=model.head, path=tmp_path / "tensors", train=((a, b), y)).capture(0)
    nbdebug.Recorder(model, head=model.head, path=tmp_path / "dataset", train=Pairs(a, b, y), batch_size=7).capture(0)
    with torch.no_grad():
        logits, features = model(a, b)
    for name in ("tensors", "dataset"):
        run = nbdebug.load_run(tmp_path / name)
        np.testing.assert_allclose(run.representations(0), features.numpy(), atol=2e-3)
        np.testing.assert_allclose(run.probabilities(0), torch.softmax(logits, 1).numpy(), atol=1e-6)


class Scores(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.fc = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x):
        return {"scores": self.fc(torch.relu(self.body(x))), "aux": x}


def test_forward_reads_logits_from_any_output(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    model = Scores()
    with pytest.raises(TypeError, match=r"returned a dict.*pass Recorder\(\.\.\., forward=f\)"):
        nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y))
    rec = nbdebug.Recorder(
        model, head=model.fc, path=tmp_path / "run", train=(x, y), forward=lambda m, batch: m(batch)["scores"]
    )
    rec.capture(0)
    with torch.no_grad():
        expected = torch.softmax(model(x)["scores"], 1).numpy()
    np.testing.assert_allclose(nbdebug.load_run(tmp_path / "run").probabilities(0), expected, atol=1e-6)
    with pytest.raises(TypeError, match="forward must be a function forward"):
        nbdebug.Recorder(model, head=model.fc, path=tmp_path / "r2", train=(x, y), forward="scores")


def test_clear_errors_for_inputs_nbdebug_cannot_batch(tmp_path, text_task, tiny_transformer):
    ids, mask, y = text_task(n=12)
    model = tiny_transformer("bert")
    args = dict(head=model.classifier, path=tmp_path / "run")

    class Unlabelled(Mappings):
        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "attention_mask": self.mask[i]}

    with pytest.raises(ValueError, match=r"train\[0\] is a mapping without a 'labels' or 'label' key"):
        nbdebug.Recorder(model, train=Unlabelled(ids, mask, y), **args)

    class Ragged(Mappings):
        def __getitem__(self, i):
            n = int(self.mask[i].sum())
            return {"input_ids": self.ids[i, :n], "labels": self.labels[i]}

    with pytest.raises(TypeError, match=r"items of train could not be stacked.*padding='max_length'"):
        nbdebug.Recorder(model, train=Ragged(ids, mask, y), **args)
    loader = DataLoader(Mappings(ids, mask, y), batch_size=4)
    with pytest.raises(TypeError, match=r"train is a DataLoader; pass the Dataset it loads from, train=loader.dataset"):
        nbdebug.Recorder(model, train=loader, **args)
    with pytest.raises(ValueError, match=r"different numbers of rows"):
        nbdebug.Recorder(model, train=({"input_ids": ids, "attention_mask": mask[:5]}, y), **args)
    # An unlabeled mapping split works too; its samples get label -1.
    nbdebug.Recorder(model, train=loader.dataset, unlabeled={"input_ids": ids, "attention_mask": mask}, **args)
    assert np.load(tmp_path / "run" / "labels.npy")[12:].tolist() == [-1] * 12
