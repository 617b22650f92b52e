"""Seeded text in Portuguese, English, Chinese and emoji: the tokenizer's corpus and the tests' messages."""

from __future__ import annotations

import random


def _words(text: str) -> list[str]:
    return text.split()


PORTUGUESE = _words(
    "a conversa de hoje começou cedo quando a equipe chegou ao escritório com café pão de queijo e "
    "muitas perguntas sobre o projeto que precisa ficar pronto antes do fim do mês porque o cliente "
    "quer mostrar a aplicação aos diretores na reunião de sexta-feira em São Paulo ninguém sabia ao "
    "certo quantas mensagens o sistema guarda nem como ele decide quais lembranças esquecer quando a "
    "janela de contexto fica cheia então a engenheira explicou que cada modelo conta as palavras do "
    "seu jeito e que uma estimativa errada faz o servidor recusar o pedido ou responder com uma "
    "mensagem vazia o que é pior ainda porque ninguém percebe o problema até que os usuários reclamam "
    "depois do almoço discutimos a migração do banco de dados a configuração das máquinas virtuais a "
    "previsão de chuva para amanhã o preço das passagens de avião para Lisboa e a receita de feijoada "
    "que a avó do João prepara aos domingos com linguiça costelinha couve refogada farofa e laranja"
)

ENGLISH = _words(
    "the meeting started late because the train from the city was delayed by a signal failure and "
    "everyone wanted to know why the assistant forgot the beginning of the conversation after a few "
    "long messages the answer is that every model counts tokens in its own way and a service that "
    "guesses the count with the wrong tokenizer sends prompts that are too large for the server which "
    "then refuses them or worse returns an empty answer that looks like a normal reply we also talked "
    "about the weather the price of coffee the new library downstairs the football match on saturday "
    "and whether the database should be migrated before or after the holidays"
)

CHINESE = _words(
    "今天 我们 讨论 了 项目 的 进度 和 服务器 的 配置 问题 每个 模型 都 有 自己 的 分词器 所以 同样 的 "
    "句子 在 不同 的 模型 里 会 得到 不同 的 数量 如果 估计 错误 请求 就会 超过 上下文 窗口 服务器 "
    "可能 返回 空 的 回答 用户 却 不 知道 发生 了 什么 下午 大家 一起 去 吃 饺子 和 面条 然后 "
    "回到 办公室 继续 写 代码 测试 数据库 迁移 讨论 明天 的 天气 和 周末 去 长城 旅游 的 计划 "
    "北京 上海 广州 深圳 杭州 成都 西安 南京 武汉 重庆 春天 夏天 秋天 冬天 学习 工作 生活 朋友 "
    "家人 音乐 电影 书籍 咖啡 茶叶 火车 飞机 地铁 医院 学校 公园 银行 市场"
)

EMOJI = _words("😀 😂 🥰 😎 🤔 🙌 👍 🎉 🔥 🌟 🍕 🍜 ☕ 🚀 🌧️ 🌈 🐱 🐶 🇧🇷 🇨🇳 ❤️ 💡 📚 🎵 ⚽ 🏖️ 🧑‍💻 👨‍👩‍👧")

LANGUAGES = {"pt": PORTUGUESE, "en": ENGLISH, "zh": CHINESE, "emoji": EMOJI}


def sentence(rng: random.Random, language: str, words: int) -> str:
    """`words` words of `language` in a random order (Chinese words joined without spaces)."""
    picked = rng.choices(LANGUAGES[language], k=words)
    joiner = "" if language == "zh" else " "
    end = "。" if language == "zh" else "."
    text = joiner.join(picked)
    return text[:1].upper() + text[1:] + end


def paragraph(rng: random.Random, language: str, sentences: int) -> str:
    return " ".join(sentence(rng, language, rng.randint(6, 16)) for _ in range(sentences))


def corpus(seed: int = 0, lines: int = 4000) -> list[str]:
    """Lines of mixed text to train the test tokenizer on.

    The mix (more English than Portuguese or Chinese, emoji rare) is tuned so that the tokenizer
    counts about as a small open model's does against o200k: Portuguese ~2.2x, English ~1.2x,
    Chinese ~1.6x, emoji ~2.5x (emoji and rarer Chinese characters fall back to bytes).
    """
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        language = rng.choices(("pt", "en", "zh"), weights=(30, 45, 25))[0]
        line = paragraph(rng, language, rng.randint(1, 3))
        if rng.random() < 0.02:
            line += " " + " ".join(rng.choices(EMOJI, k=rng.randint(1, 4)))
        out.append(line)
    return out


def long_message(rng: random.Random, language: str, sentences: int) -> str:
    """A user message: a paragraph with a little emoji, as people write."""
    return paragraph(rng, language, sentences) + " " + "".join(rng.choices(EMOJI, k=2))
