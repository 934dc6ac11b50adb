"""matserve.alignn.model against the alignn package's own implementation.

The package's DGL model (``alignn.models.alignn.ALIGNN``) cannot run here: DGL does not
support our torch. So:
- parameter names: our ``state_dict`` loads strictly into the package's ``ALIGNN`` (built with
  DGL's pooling layer replaced, the only DGL object its constructor needs);
- numbers: the package's pure-PyTorch ``ALIGNNAtomWisePure`` does the same message passing
  without DGL, but normalises with LayerNorm where ALIGNN uses BatchNorm. With its LayerNorms
  swapped for BatchNorm1d and our random weights loaded (``matserve.alignn.reference``), its
  output must equal ours to 1e-5.
"""

import numpy as np
import pytest
import torch
from ase.build import bulk
from pymatgen.core import Structure

from matserve.alignn.features import atom_features, feature_table, table_from_jarvis
from matserve.alignn.graph import build_graph
from matserve.alignn.model import ALIGNN, ALIGNNConfig, pack_graphs
from matserve.alignn.reference import reference_model
from matserve.structures import System

alignn_models = pytest.importorskip("alignn.models.alignn")
pure = pytest.importorskip("alignn.models.alignn_atomwise_pure")
from alignn.torch_graph_builder import TorchGraph  # noqa: E402

SMALL = ALIGNNConfig(alignn_layers=2, gcn_layers=2, hidden_features=32, embedding_features=16)


def real_structures() -> list[System]:
    perovskite = Structure.from_spacegroup("Pm-3m", [[3.905, 0, 0], [0, 3.905, 0], [0, 0, 3.905]],
                                           ["Sr", "Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]])
    quartz_like = bulk("Si", "diamond", a=5.43) * (1, 1, 2)
    quartz_like.rattle(0.05, seed=1)
    return [System.from_pymatgen(perovskite), System.from_ase(quartz_like),
            System.from_ase(bulk("NaCl", "rocksalt", a=5.64))]


def random_model(config: ALIGNNConfig) -> ALIGNN:
    torch.manual_seed(0)
    model = ALIGNN(config)
    for module in model.modules():  # non-trivial BatchNorm statistics, so they are tested too
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_atom_feature_table_is_jarvis_cgcnn():
    reference = table_from_jarvis()
    assert set(feature_table()) == set(reference) == set(range(1, 101))
    for z, values in reference.items():
        assert feature_table()[z] == values


def test_parameter_names_load_into_the_official_model(monkeypatch):
    monkeypatch.setattr(alignn_models, "AvgPooling", torch.nn.Identity)
    official = alignn_models.ALIGNN(alignn_models.ALIGNNConfig(
        name="alignn", alignn_layers=2, gcn_layers=2, hidden_features=32, embedding_features=16))
    ours = random_model(SMALL)
    assert list(official.state_dict()) == list(ours.state_dict())
    official.load_state_dict(ours.state_dict(), strict=True)


def reference_graphs(systems: list[System]):
    graphs = [build_graph(system) for system in systems]
    atoms, bonds = 0, 0
    g_src, g_dst, r, lg_src, lg_dst, feats = [], [], [], [], [], []
    for system, graph in zip(systems, graphs):
        g_src.append(graph.edge_src + atoms)
        g_dst.append(graph.edge_dst + atoms)
        r.append(graph.bond_vectors)
        lg_src.append(graph.angle_src + bonds)
        lg_dst.append(graph.angle_dst + bonds)
        feats.append(atom_features(system.numbers))
        atoms += system.n_atoms
        bonds += len(graph.edge_src)
    g = TorchGraph(num_nodes=atoms, src=torch.cat(g_src), dst=torch.cat(g_dst),
                   ndata={"atom_features": torch.cat(feats)}, edata={"r": torch.cat(r)},
                   batch_num_nodes=torch.tensor([s.n_atoms for s in systems]),
                   batch_num_edges=torch.tensor([len(gr.edge_src) for gr in graphs]))
    lg = TorchGraph(num_nodes=bonds, src=torch.cat(lg_src), dst=torch.cat(lg_dst))
    return graphs, g, lg


def test_output_equals_the_packages_pure_pytorch_alignn_on_real_structures():
    systems = real_structures()
    ours = random_model(SMALL)
    reference = reference_model(ours)
    graphs, g, lg = reference_graphs(systems)
    with torch.no_grad():
        expected = reference((g, lg, None))["out"]
        got = ours(pack_graphs(graphs, [atom_features(s.numbers) for s in systems]))
    assert got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)
    assert got.std() > 1e-3  # the three crystals give different answers


def test_a_batch_equals_the_crystals_one_by_one():
    systems = real_structures()
    model = random_model(SMALL)
    graphs = [build_graph(s) for s in systems]
    feats = [atom_features(s.numbers) for s in systems]
    with torch.no_grad():
        together = model(pack_graphs(graphs, feats))
        alone = torch.cat([model(pack_graphs([g], [f])) for g, f in zip(graphs, feats)])
    np.testing.assert_allclose(together.numpy(), alone.numpy(), atol=1e-6)
