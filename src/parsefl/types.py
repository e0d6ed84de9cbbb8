"""Type aliases that several layers share, defined once. This module imports nothing from
parsefl, so any module may import it without an import arrow running back up."""

from collections.abc import Mapping

import torch

# One component's tensors by parameter name (a slice of a state dict): what travels and merges.
Tensors = Mapping[str, torch.Tensor]

# The agents a message passes, sender first and receiver last; each step is one physical hop.
HopPath = tuple[int, ...]

# An undirected physical link between two neighbouring agents, as (smaller id, larger id):
# what communication is billed to.
PhysicalLink = tuple[int, int]

# A planned overlay link of one component: (component, smaller end, larger end, physical hops
# of its path); a relayed link spans several physical links.
OverlayLink = tuple[str, int, int, int]
