import os
import time

import gradio as gr

VERSION = os.environ.get("HELLO_VERSION", "v1")


def greet(name: str) -> str:
    return f"Hello {name}! ({VERSION})"


def countdown(n: float):
    for i in range(int(n), 0, -1):
        yield str(i)
        time.sleep(0.2)
    yield "liftoff"


with gr.Blocks(title="Hello Gradio") as demo:
    gr.Markdown("# 👋 Hello Gradio")
    name = gr.Textbox(label="Name")
    out = gr.Textbox(label="Greeting")
    gr.Button("Greet").click(greet, name, out, api_name="greet")
    n = gr.Number(value=3, label="Count from")
    ticks = gr.Textbox(label="Countdown")
    gr.Button("Count down").click(countdown, n, ticks, api_name="countdown")

if __name__ == "__main__":
    print(f"hello-gradio {VERSION} starting", flush=True)
    demo.launch()
