"""Starting LM-head rows for the edit kind tokens, fitted as a linear probe of the model's own
hidden states, so that a kinds stage starts from a guess better than chance.

With zero rows (grow_vocabulary) every kind scores the same, so the kind questions send no
gradient into the model's body until the rows have grown apart by themselves: the kind loss sat
at chance for the first ~100 steps of every kinds stage (measured, docs/embedded-model.md).
The probe fits the six rows, the rest of the head fixed, to answer kind questions, and keeps
them quiet at the answer positions of the other tasks: fitted on kind questions alone, the
rows took describe's loss from 3 to 12 nats in the stage's first steps (measured)."""

import torch
import torch.nn.functional as F

# the other tasks whose answer positions the rows must leave alone: text to 3D (mesh codes) and
# describe (words) are asked with plain positions, as in training; edit answers are mesh codes
# too, at the positions of the preset's edit layout, and the text to 3D ones stand for them
QUIET_TASKS = ("text_to_3d", "describe")


@torch.no_grad()
def answer_states(model, batch: list[tuple[list[int], int]], per_example: int,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Final hidden states at the positions that predict answer tokens (the first
    `per_example` of them, or that many drawn with a generator), and the tokens they predict."""
    states, targets = [], []
    for ids, start in batch:
        hidden = model.model(input_ids=torch.tensor([ids], device=model.device)).last_hidden_state[0]
        at = torch.arange(start - 1, len(ids) - 1)
        if generator is None:
            at = at[:per_example]
        elif len(at) > per_example:
            at = at[torch.randperm(len(at), generator=generator)[:per_example]]
        states.append(hidden[at.to(hidden.device)].float().cpu())
        targets.append(torch.tensor(ids)[at + 1])
    return torch.cat(states), torch.cat(targets)


def fit_kind_rows(model, kind_ids: list[int], sampler, questions: int = 1536, quiet_examples: int = 24,
                  quiet_weight: float = 3.0, ridge: float = 1e-3, seed: int = 0) -> dict:
    """Writes the kind tokens' LM-head rows: the probe's fit on `questions` kind questions and
    the answers of `quiet_examples` examples of each QUIET_TASKS task, all drawn from `sampler`.
    Returns its accuracy and loss on the kind questions and the mean loss it adds elsewhere."""
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    asked, answers = answer_states(model, [sampler.sample_kind_question() for _ in range(questions)], 1)
    quiet = torch.cat([answer_states(model, [sampler.sample(t) for _ in range(quiet_examples)], 64, generator)[0]
                       for t in QUIET_TASKS])
    head = model.lm_head.weight.detach().float().cpu()
    others = torch.ones(len(head), dtype=torch.bool)
    others[kind_ids] = False
    label = torch.tensor([kind_ids.index(int(t)) for t in answers])

    def rest(states):  # every other token's logsumexp: the kinds' rival in the softmax
        return torch.logsumexp(states @ head[others].t(), dim=1, keepdim=True)

    asked_rest, quiet_rest = rest(asked), rest(quiet)
    rows = torch.zeros(len(kind_ids), head.shape[1], requires_grad=True)

    def losses():
        kind_loss = F.cross_entropy(torch.cat([asked @ rows.t(), asked_rest], 1), label)
        # the loss the rows add where another token is right: -log P(not a kind token)
        added = (torch.logsumexp(torch.cat([quiet @ rows.t(), quiet_rest], 1), 1, keepdim=True) - quiet_rest).mean()
        return kind_loss, added

    optimiser = torch.optim.LBFGS([rows], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        kind_loss, added = losses()
        total = kind_loss + quiet_weight * added + ridge * rows.pow(2).sum()
        total.backward()
        return total

    optimiser.step(closure)
    with torch.no_grad():
        kind_loss, added = losses()
        accuracy = float(((asked @ rows.t()).argmax(1) == label).float().mean())
        model.lm_head.weight[kind_ids] = rows.to(model.lm_head.weight)
    model.train()
    return {"accuracy": accuracy, "kind_loss": float(kind_loss), "added_loss": float(added)}
