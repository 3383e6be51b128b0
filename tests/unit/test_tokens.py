"""The token-id memo: the tokenizer's own ids, each text tokenized once, bounded, fresh for a changed vocabulary."""

from cnl_core.model import tokens


class CountingTokenizer:
    """Splits on spaces; counts the texts it is asked to tokenize."""

    def __init__(self):
        self.seen, self.vocab = [], 100

    def __len__(self):
        return self.vocab

    def __call__(self, texts, add_special_tokens=True):
        self.seen.extend(texts)
        return {"input_ids": [([1] if add_special_tokens else []) + [len(w) for w in t.split()] for t in texts]}


def test_ids_are_the_tokenizers_and_each_text_is_tokenized_once():
    tok = CountingTokenizer()
    assert tokens.token_ids(tok, ["a bb", "ccc", "a bb"], True) == [[1, 1, 2], [1, 3], [1, 1, 2]]
    assert tokens.token_ids(tok, ["ccc", "dddd e"], True) == [[1, 3], [1, 4, 1]]
    assert tokens.token_ids(tok, ["ccc"], False) == [[3]]  # without special tokens: another entry
    assert tok.seen == ["a bb", "ccc", "dddd e", "ccc"]


def test_a_new_vocabulary_starts_afresh_and_the_memo_is_bounded(monkeypatch):
    tok = CountingTokenizer()
    tokens.token_ids(tok, ["x y"], True)
    tok.vocab += 1  # tokens added: ids may differ now
    tokens.token_ids(tok, ["x y"], True)
    assert tok.seen == ["x y", "x y"]
    monkeypatch.setattr(tokens, "MEMO_TOKENS", 6)
    tokens.token_ids(tok, ["a a a", "b b b"], True)  # 4 ids each: the oldest go
    tok.seen.clear()
    assert tokens.token_ids(tok, ["b b b", "a a a"], True) == [[1, 1, 1, 1]] * 2
    assert tok.seen == ["a a a"]


def test_threads_tokenizing_the_same_texts_count_each_once_and_forget_starts_afresh():
    import threading

    tok = CountingTokenizer()
    threads = [threading.Thread(target=tokens.token_ids, args=(tok, ["p q r s"], True)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tokens._memos[tok].tokens == 5  # one entry of 5 ids, however many threads stored it
    tokens.forget(tok)
    tok.seen.clear()
    tokens.token_ids(tok, ["p q r s"], True)
    assert tok.seen == ["p q r s"]
