"""AutoAttack, standard version (Croce & Hein 2020), through torchattacks' components: today's reference ℓ∞
evaluation, beside the paper's battery."""

from __future__ import annotations

import torch

from srtbench.attacks.base import Attack, AttackOutput, attack, batch_seed, in_box, no_distance, norm
from srtbench.attacks.native import pixel_ball
from srtbench.config import require
from srtbench.maximizers import eval_mode


class AutoAttack(Attack):
    """APGD-CE → APGD-T → FAB-T → Square (Croce & Hein 2020, standard version), each run only on the
    examples the previous ones left unbroken, as AutoAttack's cascade does; ℓ∞ budget `epsilon`."""

    batch_dependent = True  # torchattacks seeds each component once per batch

    def __init__(self, epsilon: float, steps: int, n_queries: int, n_target_classes: int):
        pixel_ball(epsilon)
        require(steps >= 1 and n_queries >= 1, "autoattack steps and n_queries must be >= 1")
        self.epsilon, self.steps, self.n_queries, self.n_target = epsilon, steps, n_queries, n_target_classes

    def components(self, model, num_classes: int, seed: int, eot: int = 1) -> list:
        """The cascade: the standard version's four attacks, or with `eot` > 1 the randomized version's (AutoAttack's
        version='rand': APGD-CE and APGD-DLR, each gradient averaged over `eot` passes)."""
        import torchattacks as ta

        eps, k = self.epsilon, num_classes
        if eot > 1:
            return [ta.APGD(model, norm="Linf", eps=eps, steps=self.steps, n_restarts=1, seed=seed, loss=loss,
                            eot_iter=eot) for loss in ("ce", "dlr")]
        return [
            ta.APGD(model, norm="Linf", eps=eps, steps=self.steps, n_restarts=1, seed=seed, loss="ce"),
            ta.APGDT(model, norm="Linf", eps=eps, steps=self.steps, n_restarts=1, seed=seed, n_classes=k),
            ta.FAB(model, norm="Linf", eps=eps, steps=self.steps, n_restarts=1, seed=seed, multi_targeted=True,
                   n_classes=k),
            ta.Square(model, norm="Linf", eps=eps, n_queries=self.n_queries, n_restarts=1, seed=seed),
        ]

    def __call__(self, model, x, target, gen=None):
        return self._cascade(model, x, target, gen, eot=1)

    def expectation(self, model, x, target, gen, samples):
        return self._cascade(model, x, target, gen, eot=samples)

    def _cascade(self, model, x, target, gen, eot: int) -> AttackOutput:
        seed = batch_seed(gen) if gen is not None else 0
        x_adv = x.clone()
        with eval_mode(model):
            with torch.no_grad():
                logits = model(x)
            robust = logits.argmax(1) == target
            for component in self.components(model, logits.shape[1], seed, eot) if self.epsilon > 0 else []:
                rows = robust.nonzero().squeeze(1)
                if not len(rows):
                    break
                candidate = component(x[rows], target[rows]).detach()
                # keep a candidate only if it breaks the example and respects the budget (FAB may overshoot)
                candidate = x[rows] + (candidate - x[rows]).clamp(-self.epsilon, self.epsilon)
                with torch.no_grad():
                    broken = model(candidate).argmax(1) != target[rows]
                x_adv[rows[broken]] = candidate[broken]
                robust[rows[broken]] = False
            model.eval()  # torchattacks restores its own notion of the mode
        inside = (norm(x_adv - x, "linf") <= self.epsilon + 1e-5) & in_box(x_adv)
        return AttackOutput(x_adv, inside, no_distance(x))


@attack("autoattack", defaults=lambda spec: dict(epsilon=spec.budgets.linf, steps=100, n_queries=5000,
                                                 n_target_classes=spec.num_classes - 1),
        budget=("epsilon",), threat="pixel", library="torchattacks 3.5.1 APGD, APGDT, FAB, Square",
        source="Croce & Hein 2020, standard version (APGD-CE, APGD-T, FAB-T, Square 5000 queries)",
        notes="today's reference ℓ∞ evaluation; not in the paper. Compared with the official implementation"
              " (pyautoattack, version='standard') by `python benchmarks/attacks.py --only autoattack` (README,"
              " Performance)", header="AutoAttack", order=170, slow=True,
        white_box=True, must_beat=("pgd",), quick="epsilon=0.1,steps=3,n_queries=10")
def _autoattack(epsilon, steps, n_queries, n_target_classes) -> Attack:
    return AutoAttack(epsilon, steps, n_queries, n_target_classes)
