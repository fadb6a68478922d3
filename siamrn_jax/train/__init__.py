"""Host-side training utilities (targets, proposals, contrastive pairs)."""
