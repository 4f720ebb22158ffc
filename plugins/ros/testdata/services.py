#!/usr/bin/python3
"""ROS services for the ros plugin's test, in rospy (an implementation
independent of goroslib): /dock (std_srvs/Trigger) and /brake
(std_srvs/SetBool). Prints "ready" once both are advertised."""
import rospy
from std_srvs.srv import SetBool, SetBoolResponse, Trigger, TriggerResponse

rospy.init_node("test_services")
rospy.Service("/dock", Trigger, lambda req: TriggerResponse(success=True, message="docking"))
rospy.Service("/brake", SetBool, lambda req: SetBoolResponse(success=req.data, message="brake=%s" % req.data))
print("ready", flush=True)
rospy.spin()
