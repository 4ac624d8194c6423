DROP TABLE leader_fence;
