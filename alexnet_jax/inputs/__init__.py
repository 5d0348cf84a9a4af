"""The input side: the paper's augmentation (`augment`) and the two pipelines that apply it
(`pipeline`: on-device gather, or tf.data on the host) behind one contract."""
