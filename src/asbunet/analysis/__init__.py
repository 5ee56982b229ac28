"""Model analysis: size (Fig. 7; `size`) and receptive field (Section III-C, Eq. 2; `receptive_field`)."""
