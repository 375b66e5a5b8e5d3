"""The edge agent: reads a camera or a recorded clip, counts people, estimates gender and age
group once per person, and delivers one PersonEvent per person."""
