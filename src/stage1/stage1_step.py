"""One stage-1 step: the co-regularised loss, each model's forward pass (catching its [CLS]
vectors), forward and backward of a (micro-)batch, clipping and the optimiser step (as the
paper's code: one gradient norm over all M models, Adam with eps 1e-9), and the learning-rate
schedule (transformers' `get_linear_schedule_with_warmup`). Eager training, the speed layer
and the embedding passes all run these."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from src.runtime import autocast, fused_optimizer

ADAM_EPS = 1e-9  # the paper's stage-1 optimiser: torch.optim.Adam(..., eps=1e-9)


def coregularized_loss(logits: torch.Tensor, labels: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """mean_m CE(f_m, y) + alpha * mean_m KL(p_mean || p_m).  logits: [M, B, C], labels: [B].

    alpha may be a tensor (a CUDA graph's input): the KL term is then always computed."""
    logits = logits.float()
    num_models = logits.shape[0]
    ce = F.cross_entropy(logits.flatten(0, 1), labels.repeat(num_models))
    if num_models == 1 or (not isinstance(alpha, torch.Tensor) and alpha == 0):
        return ce
    log_p = F.log_softmax(logits, dim=-1)  # [M, B, C]
    log_mean = torch.logsumexp(log_p, dim=0) - np.log(num_models)  # [B, C]
    kl = (log_mean.exp() * (log_mean - log_p)).sum(-1).mean()  # mean over models and batch
    return ce + alpha * kl


def lr_lambda(total_steps: int, steps_per_epoch: int, schedule: str, warmup_share: float = 0.06):
    """Linear warm-up over 6% of the steps, then linear decay to 0: transformers'
    `get_linear_schedule_with_warmup(num_warmup_steps=int(0.06 * total))`, as the paper's code
    (the first step runs at learning rate 0).

    `restart` reproduces the reference code's effective schedule: its second scheduler call
    each epoch reset the step counter, so the warm-up restarted every epoch.
    """
    warmup = max(1, int(warmup_share * total_steps))

    def factor(step: int) -> float:
        if schedule == "restart":
            step = step % steps_per_epoch
        if step < warmup:
            return step / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def forward_cls(model, batch: dict, device: torch.device, precision: str,
                cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One model's [CLS] vectors [B, D] and logits [B, C] on a batch."""
    last = LastHiddenState(model)
    try:
        with autocast(device, precision, cache):
            logits = model(**batch).logits
    finally:
        last.remove()
    return last.pop()[:, 0], logits


class LastHiddenState:
    """The encoder's last layer [B, L, D], caught on its way to the classification head.

    Asking the model for all its hidden states instead would keep every layer's [B, L, D]
    alive until the batch ends.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        encoder = getattr(model, "_orig_mod", model).base_model  # a compiled model's original
        self.value = None
        self.handle = encoder.register_forward_hook(self._keep)

    def _keep(self, module, args, out) -> None:
        self.value = out[0]

    def pop(self) -> torch.Tensor:
        value, self.value = self.value, None
        return value

    def remove(self) -> None:
        self.handle.remove()


def stage1_optimizer(models: list[torch.nn.Module], lr: float, weight_decay: float = 0.0,
                     capturable: bool = False) -> torch.optim.Optimizer:
    """Adam with the paper's eps 1e-9 over the models, one parameter group per model. It is
    AdamW, which equals Adam at the default `--weight_decay 0` (the paper's code never applies
    weight decay) and decouples it otherwise.

    `capturable` (CUDA graphs): each group's learning rate is a tensor on the models' device,
    which the graphs read and the scheduler updates in place."""
    groups = [{"params": list(model.parameters())} for model in models]
    if capturable:
        for group in groups:
            group["lr"] = torch.tensor(float(lr), device=group["params"][0].device)
        return fused_optimizer(torch.optim.AdamW, groups, lr=lr, eps=ADAM_EPS, weight_decay=weight_decay,
                               capturable=True)
    return fused_optimizer(torch.optim.AdamW, groups, lr=lr, eps=ADAM_EPS, weight_decay=weight_decay)


def forward_backward(runners: list, batch: dict, labels: torch.Tensor, alpha: float | torch.Tensor,
                     weight: float, *, device: torch.device, precision: str, cache: bool = True) -> torch.Tensor:
    """Co-regularised loss of one (micro-)batch, times `weight`, back-propagated into the
    models' gradients; returns it detached."""
    with autocast(device, precision, cache):
        logits = torch.stack([run(**batch).logits for run in runners])  # [M, B, C]
    loss = coregularized_loss(logits, labels, alpha) * weight
    loss.backward()
    return loss.detach()


def clip_and_step(optimizer: torch.optim.Optimizer, clip_gradient_norm: float) -> None:
    """Clip the gradient norm taken jointly over every model's parameters (the paper's code clips
    `NLLModel.parameters()`, which holds all M models), then step."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, clip_gradient_norm)
    optimizer.step()
