from openfields.video.command import main

main()
