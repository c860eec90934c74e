"""Prompt token ids of one user turn and the ids that end an answer, shared by both LLM engines
(our loop and vLLM), so the same task gives the same ids whichever engine runs it."""

from __future__ import annotations


def chat_prompt_ids(tokenizer, chat_template: str, content: list, image_tokens: int = 0,
                    image_token_id: int | None = None) -> list[int]:
    """The chat template applied to one user turn (`content`: Qwen-VL content items), ending
    with the assistant's opening. image_tokens: how many <|image_pad|> ids the one image
    placeholder expands to (one per merged 2x2 patch group of the image)."""
    messages = [{"role": "user", "content": content}]
    text = tokenizer.apply_chat_template(messages, chat_template=chat_template, add_generation_prompt=True,
                                         tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if image_tokens:
        at = ids.index(image_token_id)
        ids = ids[:at] + [image_token_id] * image_tokens + ids[at + 1:]
    return ids


def stop_token_ids(eos, tokenizer) -> set[int]:
    """The ids that end an answer: the model's eos id or ids (`eos`, from its generation config:
    an int, a list or None) and the tokenizer's eos id."""
    ids = {int(i) for i in ([eos] if isinstance(eos, int) else (eos or []))}
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids
