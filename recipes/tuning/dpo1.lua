-- DPO tuning round 1 (cxr phantoms, tuning seeds 100-102, tuning split; docs/results.md): round 0's
-- DPO (128 pairs ranked by the checklist dimension, a quarter held out) fitted its training pairs
-- and stayed at chance on the held-out ones. More pairs (and a held-out quarter of 128 pairs, a
-- tighter estimate); the same reward CRAFT ascends as the ranking (a preference with more signal
-- than the checklist alone); a stronger beta.
return {
  { name = 'DPO, 512 pairs', dpo = { pairs = 512 } },
  { name = 'DPO, 512 pairs ranked by the reward CAS', dpo = { pairs = 512, rank_by = 'cas' } },
  { name = 'DPO, 512 pairs, beta 5000', dpo = { pairs = 512, beta = 5000 } },
}
