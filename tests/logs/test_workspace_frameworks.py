"""Whole runs written by real frameworks, through discovery, readers and the store."""

from __future__ import annotations

from pathlib import Path

from conftest_text import tiny_hf_trainer

from tui.logs.workspace import Workspace


def test_hf_output_folder_counts_each_point_once(tmp_path: Path) -> None:
    """A Trainer with TensorBoard reporting: its runs/*/events and checkpoint-N states hold
    the same series; the event file is read, each point once (DESIGN.md)."""
    ws = Workspace([tmp_path])
    tiny_hf_trainer(tmp_path / "hf_out", report_to=["tensorboard"]).train()
    ws.refresh()
    assert list(ws.runs) == ["hf_out"]
    run = ws.runs["hf_out"]
    assert run.format == "hf_trainer_state"
    assert run.store.count("loss") == 12
    assert run.store.count("val_loss") == 3
    assert run.store.count("lr") == 12
    assert run.hparams["max_train_steps"] == 12
    assert run.total_steps == 12
    assert ws.errors == []
    assert run.store.restarts == []


def test_lightning_csvlogger_version_folder_is_a_run(tmp_path: Path) -> None:
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import CSVLogger

    class Tiny(pl.LightningModule):
        def __init__(self, lr: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    x = torch.randn(64, 4)
    ds = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    dl = torch.utils.data.DataLoader(ds, batch_size=8)
    trainer = pl.Trainer(
        max_epochs=3,
        logger=CSVLogger(str(tmp_path), name="lightning_logs"),
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(Tiny(), dl, dl)
    ws = Workspace([tmp_path])
    ws.refresh()
    assert list(ws.runs) == ["lightning_logs/version_0"]
    run = ws.runs["lightning_logs/version_0"]
    assert run.format == "csv"
    assert run.store.count("loss") == 24
    assert run.store.count("val_loss") == 3
    assert run.hparams["lr"] == 0.05  # from hparams.yaml
    assert ws.errors == []
