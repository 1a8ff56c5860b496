#!/bin/sh
# The paper's run: 20 Newsgroups, SN 20%, bert-base-uncased, seed 1 (scripts/train.sh of the
# reference code). Override the data folder and the model with environment variables, e.g.
#   DATA=../shared/datasets/20newsgroups BERT=minilm sh scripts/train.sh
# Any further arguments are passed on to main.py (e.g. --device cpu).
DATA=${DATA:-datasets/20news}
BERT=${BERT:-bert-base-uncased}
SEED=${SEED:-1}
python main.py \
  --dataset 20news --path "$DATA" --bert "$BERT" \
  --noise_type SN --noise_ratio 0.2 --seed "$SEED" \
  --lr 1e-4 --train_batch_size 64 --epochs 10 \
  --vae_lr 1e-4 --total_iter 10 --lambda_t 1 \
  --n_model 2 --knn_mode onehot --prior_norm 5 --alpha_t_hi 5 --warmup_epochs 0.1 \
  "$@"
