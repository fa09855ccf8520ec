"""Face geometry: detection, FFHQ alignment and paste-back."""
