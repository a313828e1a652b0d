"""Word lists the embedded instruction suite draws from (plain English, written for this project)."""
from __future__ import annotations

WORDS = tuple(dict.fromkeys("""
apple river stone cloud tiger maple piano orbit lemon candle forest planet silver garden rocket window
butter violet bridge summer anchor basket beacon blanket bottle branch bucket cabin camera canyon carpet
castle cherry circle clock copper cotton desert dragon drawer eagle engine falcon feather fence field
finger flower fountain galaxy ginger glacier guitar hammer harbor helmet honey island jacket jungle kettle
ladder lantern leather letter meadow mirror monkey mountain needle ocean orange oyster paddle palace
pencil pepper pillow pirate pocket pony puzzle rabbit radio rainbow ribbon saddle sailor salmon sandal
shadow shelter shovel signal sister spider spoon statue stream sugar sunset table teapot thunder ticket
timber tomato tower trumpet tunnel turtle valley velvet wagon walnut wizard wolf yellow zebra acorn
almond arrow badge bagel bamboo banner barrel beetle bicycle biscuit blossom bonnet border breeze
bubble cactus candy canoe carrot cattle cellar cement chapel cheese chimney cinema citrus clover
cobalt coffee collar comet cookie coral corner cradle crayon cricket crystal cupboard curtain cushion
daisy dancer denim dinner doctor dollar donkey dolphin dragonfly emerald ferry fiddle flag flannel
forge fossil frost garlic gazelle geyser goblet gravel griffin grocery hamlet harvest hazel hedge
heron hockey hollow horizon hornet iceberg igloo ivory jasmine jelly jewel kayak kernel kitten koala
lagoon lake lasso lava lettuce lily linen lizard lobster locket magnet mango marble market meteor
mitten moose mosaic muffin mustard napkin nectar noodle nutmeg oasis olive onion opal otter paint
panda parcel parrot pasta peach peanut pebble pelican pepperoni pickle pigeon pine planet plaza
plum pond poppy portal potato prairie pretzel pumpkin quartz quill quilt raccoon radish raft raisin
raven reef robin rocket ruby saffron sapphire scarf scooter seashell sesame sheriff skillet sparrow
spinach sponge squirrel stable stapler sunflower swan tablet tangerine temple tent thimble thistle
tiara toast tortoise trolley tulip turnip umbrella unicorn vanilla vessel village vinegar violin
volcano waffle walrus wheat whistle willow windmill yacht yogurt zipper
""".split()))
NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goro", "Hana", "Ivan", "Jada", "Kofi", "Lena",
         "Marco", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ITEMS = ("apples", "pens", "marbles", "stickers", "cards", "shells", "stamps", "beads", "books", "coins")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
# BIG-Bench Hard object_counting's shape: objects of a few kinds, counted by kind.
OBJECT_KINDS = {
    "fruits": ("apple", "banana", "peach", "plum", "grape", "orange", "nectarine", "strawberry"),
    "vegetables": ("carrot", "onion", "potato", "cabbage", "yam", "celery stalk", "lettuce head"),
    "musical instruments": ("piano", "flute", "violin", "drum", "trumpet", "clarinet", "accordion"),
    "animals": ("cat", "dog", "rabbit", "goat", "snail", "fish", "frog", "donkey", "mouse"),
}
COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "black", "pink", "brown")
PEOPLE = ("Alice", "Bob", "Claire", "Dave", "Eve")
