# Strings: formatting, splitting, joining, slicing and small bytes objects.
words = []
for i in range(300000):
    s = f"item-{i}-{i * 7 % 1000}"
    parts = s.split("-")
    words.append("/".join(reversed(parts)).upper()[:12])
text = " ".join(words)
counts = {}
for w in text.split():
    counts[w[:4]] = counts.get(w[:4], 0) + 1
encoded = [w.encode() for w in words[::3]]
print(len(text), len(counts), sum(map(len, encoded)))
