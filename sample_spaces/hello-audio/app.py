import gradio as gr
import numpy as np


def tone(frequency: float) -> tuple[int, np.ndarray]:
    rate = 16000
    t = np.linspace(0, 1, rate, endpoint=False)
    return rate, (0.3 * np.sin(2 * np.pi * float(frequency) * t) * 32767).astype(np.int16)


with gr.Blocks(title="Hello Audio") as demo:
    gr.Markdown("# 🔊 Hello Audio")
    frequency = gr.Number(value=440, label="Frequency (Hz)")
    sound = gr.Audio(format="mp3", label="Tone")
    gr.Button("Play").click(tone, frequency, sound, api_name="tone")

if __name__ == "__main__":
    demo.launch()
