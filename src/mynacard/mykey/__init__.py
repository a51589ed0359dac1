"""The MyKey platform (マイキープラットフォーム) and what municipalities built on the card: public-facility
member cards, local government points (自治体ポイント), shelter check-in (避難所)."""
