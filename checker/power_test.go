package checker

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/nemesis/fault"
)

const second = int64(time.Second)

// load builds a register history: ops are (f, call, return, type, node).
type load struct {
	events []history.Event
	p      int
}

func (l *load) op(f string, call, ret int64, typ, node string) *load {
	l.p++
	v := json.RawMessage(`"1"`)
	switch f {
	case "get":
		v = nil
	case "cas":
		v = json.RawMessage(`{"from":"1","to":"2"}`)
	}
	id := fmt.Sprintf("p%d", l.p)
	l.events = append(l.events,
		history.Event{Time: call, Process: history.Process(l.p), Type: history.Invoke, F: f, Key: "k", Value: v, Client: id, Seq: 1},
		history.Event{Time: ret, Process: history.Process(l.p), Type: typ, F: f, Key: "k", Value: v, Client: id, Seq: 1, Node: node})
	return l
}

// every adds an acknowledged get, put and cas every step from..to.
func (l *load) every(from, to, step int64) *load {
	for t := from; t < to; t += step {
		l.op([]string{"get", "put", "cas"}[(t/step)%3], t, t+step/2, history.OK, "n1")
	}
	return l
}

// failing adds failed puts every step from..to.
func (l *load) failing(from, to, step int64) *load {
	for t := from; t < to; t += step {
		l.op("put", t, t+step/2, history.Fail, "")
	}
	return l
}

func (l *load) fault(op fault.Op) *load {
	v, err := json.Marshal(op)
	if err != nil {
		panic(err)
	}
	l.events = append(l.events, history.Event{Time: op.Time, Process: history.NemesisProcess, Type: history.Info, F: string(op.F), Value: v,
		Targets: op.Touched(), Detail: op.Describe()})
	return l
}

func (l *load) final(t int64, typ string) *load {
	l.p++
	id := fmt.Sprintf("p%d", l.p)
	l.events = append(l.events,
		history.Event{Time: t, Process: history.Process(l.p), Type: history.Invoke, F: "get", Key: "k", Client: id, Seq: 1, Final: true},
		history.Event{Time: t + 1000, Process: history.Process(l.p), Type: typ, F: "get", Key: "k", Client: id, Seq: 1, Final: true})
	return l
}

func (l *load) on(t *testing.T) *History {
	t.Helper()
	sortEvents(l.events)
	h, err := NewHistory("test", "register", l.events)
	require.NoError(t, err)
	return h
}

// sortEvents orders events by time, as a run writes them.
func sortEvents(es []history.Event) {
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].Time < es[j-1].Time; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

func TestAGapCountsFromTheLastAcknowledgementToTheLoadsEnd(t *testing.T) {
	h := new(load).every(0, 3*second, second/10).failing(3*second, 15*second, second/2).
		fault(fault.Op{Time: 3 * second, F: fault.Kill, Nodes: []int{1, 2, 3}}).
		fault(fault.Op{Time: 16 * second, F: fault.Restart, Nodes: []int{1, 2, 3}}).final(17*second, history.OK).on(t)
	a, res := CheckPower(h, Floor{MinAvailability: 0.5, Faults: true, Grace: 2 * time.Second})
	require.Equal(t, Unknown, res.Verdict, res.Detail)
	require.InDelta(t, 14.75-2.95, a.LongestGap.Seconds(), 0.01, "from the last acknowledgement to the load's end")
	require.InDelta(t, 14.75, a.LongestGap.End, 0.01)
	require.Contains(t, a.LongestGap.During, "kill -9 n1 n2 n3 (from 3.0 s)")
	require.InDelta(t, 3.0/14.75, a.Share, 0.01)
	require.Contains(t, res.Detail, "11.8 s of 14.8 s had no acknowledged operation")
	require.Contains(t, res.Detail, "while kill -9 n1 n2 n3 (from 3.0 s) was in force")
	require.Contains(t, res.Detail, "no acknowledgement after kill -9 n1 n2 n3 began (in force until the load's end) at 3.0 s")
	require.Len(t, a.Unserved, 1)
	require.InDelta(t, 3.0, a.Unserved[0].Start, 0.01)
	require.Len(t, a.Faults, 1)
	require.True(t, a.Faults[0].AfterLoad)
	require.InDelta(t, 1.0, a.Faults[0].Recovery, 0.01, "the final reads show the recovery of a fault healed after the load")
}

func TestPowerFloorJudgesWhatTheRunExercised(t *testing.T) {
	floor := Floor{MinAvailability: 0.5, Faults: true, Grace: 2 * time.Second}
	for _, tc := range []struct {
		name  string
		h     *load
		floor Floor
		want  Verdict
		says  string
	}{
		{"a kill healed and served again is valid", new(load).every(0, 10*second, second/10).
			fault(fault.Op{Time: 3 * second, F: fault.Kill, Nodes: []int{2}}).fault(fault.Op{Time: 5 * second, F: fault.Restart, Nodes: []int{2}}),
			floor, Valid, "an acknowledgement after each of 1 faults"},
		{"a heal with no acknowledgement after it is unknown", new(load).every(0, 3*second, second/10).failing(3*second, 15*second, second/2).
			fault(fault.Op{Time: 3 * second, F: fault.Partition, Links: [][2]int{{1, 2}, {2, 1}}}).fault(fault.Op{Time: 5 * second, F: fault.Heal}),
			Floor{Faults: true, Grace: 2 * time.Second}, Unknown, "no acknowledgement after cut n1-/->n2 n2-/->n1 ended at 5.0 s"},
		{"a heal within the grace of the load's end needs no acknowledgement in the load", new(load).every(0, 9*second, second/10).failing(9*second, 10*second, second/10).
			fault(fault.Op{Time: 8 * second, F: fault.Kill, Nodes: []int{1}}).fault(fault.Op{Time: 9 * second, F: fault.Restart, Nodes: []int{1}}),
			floor, Valid, "served"},
		{"a nemesis asked for that did nothing is unknown", new(load).every(0, 5*second, second/10), floor, Unknown, "no fault was performed"},
		{"no nemesis asked for, none needed", new(load).every(0, 5*second, second/10), Floor{MinAvailability: 0.5}, Valid, ""},
		{"faults that began only while nothing was served are unknown", new(load).every(0, second, second/10).failing(second, 4*second, second/10).every(4*second, 10*second, second/10).
			fault(fault.Op{Time: 3 * second, F: fault.Pause, Nodes: []int{1}}).fault(fault.Op{Time: 3*second + 1, F: fault.Resume, Nodes: []int{1}}),
			floor, Unknown, "none of the 1 faults began while the system was serving"},
		{"availability below the floor is unknown", new(load).every(0, 2*second, second/10).failing(2*second, 10*second, second/10).every(10*second, 11*second, second/10),
			Floor{MinAvailability: 0.5}, Unknown, "below the floor of 50%"},
		{"the floor can be lowered", new(load).every(0, 2*second, second/10).failing(2*second, 10*second, second/10).every(10*second, 11*second, second/10),
			Floor{MinAvailability: 0.2}, Valid, "served 3.0 of 10.9 s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, res := CheckPower(tc.h.on(t), tc.floor)
			require.Equal(t, tc.want, res.Verdict, res.Detail)
			require.Contains(t, res.Detail, tc.says)
		})
	}
}

func TestAKindNeverAcknowledgedInTheMainPhaseIsNamedEvenIfAFinalReadWasOK(t *testing.T) {
	l := new(load)
	for t := int64(0); t < 5*second; t += second / 10 {
		l.op("put", t, t+second/20, history.OK, "n1")
	}
	_, res := CheckPower(l.final(6*second, history.OK).on(t), Floor{})
	require.Equal(t, Unknown, res.Verdict)
	require.Contains(t, res.Detail, "no get was acknowledged in the main phase (0 invoked)")
	require.Contains(t, res.Detail, "no cas was acknowledged in the main phase (0 invoked)")
}

func TestAvailabilityIsMeasuredPerAnsweringNode(t *testing.T) {
	l := new(load).every(0, 4*second, second/10)
	for t := int64(0); t < 2*second; t += second / 10 {
		l.op("get", t, t+second/20, history.OK, "n2")
	}
	a, ok := MeasureAvailability(l.on(t), Cluster{})
	require.True(t, ok)
	require.InDelta(t, 1.0, a.PerNode["n1"], 0.02)
	require.InDelta(t, 0.5, a.PerNode["n2"], 0.02)
}

func TestAnEmptyMainPhaseExercisedNothing(t *testing.T) {
	_, res := CheckPower(new(load).final(second, history.OK).on(t), Floor{})
	require.Equal(t, Unknown, res.Verdict)
	require.Contains(t, res.Detail, "exercised nothing")
}

func TestDidNotRecoverEventsAreLivenessFindings(t *testing.T) {
	l := new(load).every(0, 2*second, second/10)
	l.events = append(l.events, history.Event{Time: 3 * second, Process: history.NemesisProcess, Type: history.Info, F: EventDidNotRecover,
		Targets: []int{2}, Detail: "n2 did not serve again within 10 s of the heal\nlast log lines"})
	res := CheckLiveness(l.final(4*second, history.OK).on(t))
	require.Equal(t, Invalid, res.Verdict)
	require.Len(t, res.Anomalies, 1)
	require.True(t, IsLiveness(res.Anomalies[0].Kind))
	require.Equal(t, "n2 did not serve again within 10 s of the heal", res.Detail)
	require.False(t, IsLiveness(KindNonLinearizable))
}

func TestAvailabilityIsJudgedOverTheTimeAMajorityOfTheNodesWasUp(t *testing.T) {
	// one node, killed from 2 to 5 s and from 7 to 9 s: served whenever it was up
	one := func() *load {
		return new(load).every(0, 2*second, second/10).failing(2*second, 5*second+second/2, second/10).
			every(5*second+second/2, 7*second, second/10).failing(7*second, 9*second+second/2, second/10).every(9*second+second/2, 12*second, second/10).
			fault(fault.Op{Time: 2 * second, F: fault.Kill, Nodes: []int{1}}).fault(fault.Op{Time: 5 * second, F: fault.Restart, Nodes: []int{1}}).
			fault(fault.Op{Time: 7 * second, F: fault.Kill, Nodes: []int{1}}).fault(fault.Op{Time: 9 * second, F: fault.Restart, Nodes: []int{1}})
	}
	floor := Floor{MinAvailability: 0.9, Grace: 2 * time.Second, Cluster: Cluster{Nodes: 1, Recovery: time.Second}}
	a, res := CheckPower(one().on(t), floor)
	require.Equal(t, Valid, res.Verdict, res.Detail)
	require.Less(t, a.Share, 0.7, "down for 5 of 12 s")
	require.InDelta(t, 1.0, a.ServableShare, 0.01, "served whenever it could")
	require.InDelta(t, 12.0-5.0-2.0, a.Servable, 0.1, "down, and one recovery time after each restart")
	require.Contains(t, res.Detail, "of the 5.0 s in which a majority of its nodes was up")

	// three nodes, one of them killed: a majority could serve, and nothing was served
	l := new(load).every(0, 2*second, second/10).failing(2*second, 12*second, second/10).every(12*second, 13*second, second/10).
		fault(fault.Op{Time: 2 * second, F: fault.Kill, Nodes: []int{3}}).fault(fault.Op{Time: 4 * second, F: fault.Restart, Nodes: []int{3}})
	floor.Cluster.Nodes = 3
	a, res = CheckPower(l.on(t), floor)
	require.Equal(t, Unknown, res.Verdict)
	require.InDelta(t, a.Share, a.ServableShare, 1e-9, "a minority down takes nothing from what the cluster can serve")
	require.Contains(t, res.Detail, "10.0 s of 12.9 s had no acknowledged operation (below the floor of 90%)")
}

func TestAPartitionThatLeavesNoMajorityTogetherIsTimeTheClusterCouldNotServe(t *testing.T) {
	// five nodes cut into 2 | 2 | 1 from 2 to 8 s: no side is a majority
	cut := [][2]int{}
	side := map[int]int{1: 0, 2: 0, 3: 1, 4: 1, 5: 2}
	for a := 1; a <= 5; a++ {
		for b := 1; b <= 5; b++ {
			if a != b && side[a] != side[b] {
				cut = append(cut, [2]int{a, b})
			}
		}
	}
	l := new(load).every(0, 2*second, second/10).failing(2*second, 8*second+second/2, second/10).every(8*second+second/2, 12*second, second/10).
		fault(fault.Op{Time: 2 * second, F: fault.Partition, Links: cut}).fault(fault.Op{Time: 8 * second, F: fault.Heal})
	a, res := CheckPower(l.on(t), Floor{MinAvailability: 0.9, Cluster: Cluster{Nodes: 5, Recovery: time.Second}})
	require.Equal(t, Valid, res.Verdict, res.Detail)
	require.InDelta(t, 12.0-6.0-1.0, a.Servable, 0.1)

	// the same cut as halves of three and two leaves a majority: its time counts
	side = map[int]int{1: 0, 2: 0, 3: 0, 4: 1, 5: 1}
	cut = cut[:0]
	for a := 1; a <= 5; a++ {
		for b := 1; b <= 5; b++ {
			if a != b && side[a] != side[b] {
				cut = append(cut, [2]int{a, b})
			}
		}
	}
	l = new(load).every(0, 2*second, second/10).failing(2*second, 8*second+second/2, second/10).every(8*second+second/2, 12*second, second/10).
		fault(fault.Op{Time: 2 * second, F: fault.Partition, Links: cut}).fault(fault.Op{Time: 8 * second, F: fault.Heal})
	a, res = CheckPower(l.on(t), Floor{MinAvailability: 0.9, Cluster: Cluster{Nodes: 5, Recovery: time.Second}})
	require.Equal(t, Unknown, res.Verdict, res.Detail)
	require.InDelta(t, a.Load.Seconds(), a.Servable, 1e-9)
}
