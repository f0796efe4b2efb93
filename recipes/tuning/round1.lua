-- Tuning round 1 (cxr phantoms, tuning seeds 100-102, tuning split; docs/results.md): the first
-- honest run showed CRAFT's reward tail barely moving while the judges saw worse images (the
-- oracle could not find the lungs in a quarter to three quarters of them). The reward's z-scores
-- span hundreds (real images agree closely on the probe and the VLM dimensions), so whichever
-- dimension has the smallest real spread owns the gradient, and the VLM dimensions move by
-- adversarial pixel patterns. These variants rescale the dimensions by their spread on the
-- starting model's images, let the reward see shifted, noisy copies, and drop the VLM dimensions.
return {
  { name = 'CRAFT, scaled + augmented', craft = { reward_scale = 'start', reward_augment = { shift = 2, noise = 0.02 } } },
  { name = 'CRAFT, vision dims, scaled + augmented', craft = { reward_scale = 'start', reward_augment = { shift = 2, noise = 0.02 },
    reward_weights = { prompt = 0, checklist = 0, probe = 1, fidelity = 1 } } },
  { name = 'CRAFT, vision dims, scaled + aug, lr 3e-4', craft = { reward_scale = 'start', reward_augment = { shift = 2, noise = 0.02 },
    reward_weights = { prompt = 0, checklist = 0, probe = 1, fidelity = 1 }, lr = 3e-4 } },
}
