"""Totals: one epoch's sums of the objective's parts, kept on the training device."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Totals:
    """One epoch's sums of the objective's parts on this rank, kept on the training device, so adding a step's
    values reads nothing back to the host (a GPU sync each): the epoch's end reduces and reads them once."""

    loss: torch.Tensor
    natural: torch.Tensor
    robust: torch.Tensor
    steps: torch.Tensor
    correct: torch.Tensor
    count: torch.Tensor

    @classmethod
    def of(cls, values: torch.Tensor) -> Totals:
        """From the float64 vector `tensor()` gives (the form resume states keep)."""
        return cls(*values.to(torch.float64).clone().unbind())

    @classmethod
    def zeros(cls, device: torch.device) -> Totals:
        return cls.of(torch.zeros(6, dtype=torch.float64, device=device))

    def tensor(self) -> torch.Tensor:
        return torch.stack([self.loss, self.natural, self.robust, self.steps, self.correct, self.count])

    def add(self, out: dict[str, torch.Tensor]) -> None:
        for name in ("loss", "natural", "robust", "correct", "count"):
            getattr(self, name).add_(out[name].detach().to(torch.float64))
        self.steps.add_(1)

    def means(self) -> dict[str, float]:
        steps = max(self.steps.item(), 1.0)
        return {"loss": self.loss.item() / steps, "natural_loss": self.natural.item() / steps,
                "robust_loss": self.robust.item() / steps,
                "train_acc": 100.0 * self.correct.item() / max(self.count.item(), 1.0)}
