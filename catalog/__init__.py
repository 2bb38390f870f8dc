"""The catalog: DCAT 3 datasets and offers, computed per requester, rendered for DSP 2025-1 and DCAT-AP."""
