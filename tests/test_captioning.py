"Chapter 3 models: the recurrent search cell, decoding, soft pseudo-captions, SCST (trustnas_nb.captioning)."
import pytest, torch
from trustnas_nb.captioning import (RecurrentCell, RecurrentGenotype, parse_recurrent_genotype, build_captioner, caption_loss,
                                    generate_soft, alive_weights, pseudo_caption_loss, greedy_decode, beam_search, sample_captions,
                                    sequence_logprob, scst_loss, ids_to_text, RNN_PRIMITIVES, BOS_ID, EOS_ID, PAD_ID, plot_recurrent_cell)
from trustnas_nb.genotypes import GenotypeError
from trustnas_nb.datasets import CAPTION_VOCAB, Vocab

torch.set_num_threads(1)


def _tiny(seed, vocab=12, cell='lstm'):
    torch.manual_seed(seed)
    return build_captioner('cnn', cell, vocab_size=vocab, cnn_width=4, embed_dim=8, hidden=8, rnn_nodes=3).eval()


def test_recurrent_genotype_round_trip_and_hostile_text():
    g = RecurrentGenotype([('tanh', 0), ('gelu', 1), ('relu', 0)])
    assert parse_recurrent_genotype(repr(g)) == g and g.concat == [1, 2, 3]
    for bad, msg in [("RecurrentGenotype(recurrent=[('tanh', 0)], concat=exec('1'))", 'only string/integer'),
                     ("RecurrentGenotype(recurrent=[('tanh', 2)])", 'predecessor'), ("RecurrentGenotype(recurrent=[('none', 0)])", 'unknown activation'),
                     ("os.system('x')", 'expected a call'), ('', 'expected recurrent-genotype text')]:
        with pytest.raises(GenotypeError, match=msg): parse_recurrent_genotype(bad)
    assert 'elu' in RNN_PRIMITIVES and 'celu' in RNN_PRIMITIVES and 'gelu' in RNN_PRIMITIVES      # the thesis' additions (L1259)
    plot_recurrent_cell(g)


def test_search_cell_derives_the_dominant_activation_per_node():
    cell = RecurrentCell(4, 3, n_nodes=2)
    with torch.no_grad():
        cell.alpha.zero_(); cell.alpha[0, RNN_PRIMITIVES.index('sigmoid')] = 5.0      # node 1 <- node 0
        cell.alpha[2, RNN_PRIMITIVES.index('elu')] = 5.0                              # node 2 <- node 1 (edges of node 2: 1, 2)
    assert cell.derive() == RecurrentGenotype([('sigmoid', 0), ('elu', 1)])
    out = cell(torch.randn(5, 4), torch.randn(5, 3)); assert out.shape == (5, 3)


@pytest.mark.parametrize('seed', range(6))
def test_beam_one_is_greedy_and_beam_never_scores_below_greedy(seed):
    m = _tiny(seed, cell='search' if seed % 2 else 'lstm')
    x = torch.rand(5, 3, 8, 8)
    g, gs = greedy_decode(m, x, max_len=6)
    b1, b1s = beam_search(m, x, beam=1, max_len=6)
    assert b1 == g and torch.allclose(b1s, gs, atol=1e-6)
    b3, b3s = beam_search(m, x, beam=3, max_len=6)
    assert bool((b3s >= gs - 1e-6).all())
    assert torch.allclose(sequence_logprob(m, x, b3), b3s, atol=1e-5)
    for s in b3 + g:
        assert 1 <= len(s) <= 6 and EOS_ID not in s[:-1] and PAD_ID not in s and BOS_ID not in s


def test_decoding_stops_at_eos_and_respects_max_length():
    m = _tiny(0)
    with torch.no_grad():                                     # make <eos> the certain next word after the first step
        m.decoder.out.bias.fill_(-20.0); m.decoder.out.bias[EOS_ID] = 20.0
    x = torch.rand(3, 3, 8, 8)
    for seqs in (greedy_decode(m, x, max_len=9)[0], beam_search(m, x, beam=3, max_len=9)[0], sample_captions(m, x, max_len=9)[0]):
        assert all(s == [EOS_ID] for s in seqs)
    with torch.no_grad(): m.decoder.out.bias[EOS_ID] = -40.0   # never ends: cut at max_len
    assert all(len(s) == 4 and EOS_ID not in s for s in greedy_decode(m, x, max_len=4)[0])
    assert all(len(s) == 4 for s in beam_search(m, x, beam=2, max_len=4)[0])
    with pytest.raises(ValueError, match='max_len must be an int >= 1'): greedy_decode(m, x, max_len=0)
    with pytest.raises(ValueError, match='beam must be an int >= 1'): beam_search(m, x, beam=0)


def test_vocabulary_round_trip_unknown_words_and_bad_captions():
    text = 'a small red circle to the left of a large blue square'
    ids = CAPTION_VOCAB.encode(text)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID and CAPTION_VOCAB.decode(ids) == text
    assert CAPTION_VOCAB.decode(CAPTION_VOCAB.encode('a zebra circle')) == 'a <unk> circle'     # documented: unknown words -> <unk>
    m = _tiny(0, vocab=len(CAPTION_VOCAB))
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match='empty caption'): caption_loss(m, x, torch.tensor([[BOS_ID, PAD_ID], [BOS_ID, 5]]))
    with pytest.raises(ValueError, match='start with <bos>'): caption_loss(m, x, torch.tensor([[5, 6], [BOS_ID, 5]]))
    with pytest.raises(ValueError, match=r'token ids must lie in \[0, '): caption_loss(m, x, torch.tensor([[BOS_ID, 999], [BOS_ID, 5]]))
    with pytest.raises(ValueError, match='2 images but 3 captions'): m(x, torch.tensor([[BOS_ID, 5]] * 3))


def test_soft_pseudo_captions_are_distributions_and_carry_gradients_to_the_architecture():
    torch.manual_seed(0)
    ef = build_captioner('search', 'search', vocab_size=10, C=2, layers=3, n_nodes=2, rnn_nodes=2, embed_dim=4, hidden=4)
    w = build_captioner('cnn', 'lstm', vocab_size=10, cnn_width=4, embed_dim=4, hidden=4)
    x = torch.rand(3, 3, 12, 12)
    P = generate_soft(ef, x, steps=5)
    assert P.shape == (3, 5, 10) and torch.allclose(P.sum(-1), torch.ones(3, 5), atol=1e-5)
    assert float(P[..., PAD_ID].detach().max()) < 1e-6 and float(P[..., BOS_ID].detach().max()) < 1e-6       # never <pad> or <bos>
    a = alive_weights(P)
    assert torch.all(a[:, 0] == 1) and bool((a[:, 1:] <= a[:, :-1] + 1e-7).all())
    pseudo_caption_loss(w, x, P).backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for _, p in ef.named_arch_parameters())
    with pytest.raises(ValueError, match='steps must be an int >= 1'): generate_soft(ef, x, steps=0)


def test_scst_loss_follows_the_reward_advantage():
    vocab = Vocab('red blue circle square'.split())
    m = _tiny(3, vocab=len(vocab))
    x = torch.rand(4, 3, 8, 8)
    refs = [['red circle']] * 4
    reward = lambda cands, rs: [float(c == r[0]) for c, r in zip(cands, rs)]
    loss, info = scst_loss(m, x, refs, vocab, reward, max_len=3, generator=torch.Generator().manual_seed(0))
    assert loss.requires_grad and set(info) == {'reward', 'baseline'}
    zero, _ = scst_loss(m, x, refs, vocab, lambda c, r: [1.0] * len(c), max_len=3)       # equal rewards: no signal
    assert float(zero.detach()) == 0.0
    with pytest.raises(ValueError, match='4 images but 3 reference lists'): scst_loss(m, x, refs[:3], vocab, reward)
