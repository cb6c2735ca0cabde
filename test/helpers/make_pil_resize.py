# Dev tool: prints sha256 of Pillow BICUBIC resizes of a fixed pattern -> test/helpers/pil_resize_sha256.json (Pillow 9.4.0, Debian 12).
import sys, hashlib, json
sys.path.append('/usr/lib/python3/dist-packages')
from PIL import Image
def pattern(w,h):
    b=bytearray(w*h*3)
    for y in range(h):
        for x in range(w):
            for c in range(3):
                b[(y*w+x)*3+c]=(x*7+y*13+c*50+(x*y)%31)&255
    return bytes(b)
out={}
for (w,h,ow,oh) in [(256,256,720,720),(40,30,17,11),(16,12,45,34),(33,20,70,20),(20,33,20,9)]:
    im=Image.frombytes('RGB',(w,h),pattern(w,h)).resize((ow,oh),Image.BICUBIC)
    out[f"{w}x{h}->{ow}x{oh}"]=hashlib.sha256(im.tobytes()).hexdigest()
# fit+pad
im=Image.frombytes('RGB',(256,256),pattern(256,256))
im.thumbnail((1280,720), Image.BICUBIC) if False else None
print(json.dumps(out,indent=1))
