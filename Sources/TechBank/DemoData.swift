import Foundation
import Postgres

/// A demonstration data set, so that a new user can try search and matching at once: five
/// sub-parks, a committee, two brokers, 20 institutes, 10 enterprises, 200 technologies with
/// Chinese and English titles across every field (most of them listed), 50 open demands, and a
/// deal in every state with its money in the ledger.
/// The data is the same on every run; only ids, keys and dates differ.
public enum DemoData {
    public struct Summary: Sendable {
        public let subParks: Int
        public let institutes: Int
        public let enterprises: Int
        public let technologies: Int
        public let listed: Int
        public let demands: Int
        /// One deal in each state, by state.
        public let deals: [DealStatus: UUID]
        /// One API key per kind of organization, by organization name: printed once, stored hashed.
        public let keys: [(organization: String, kind: OrganizationKind, secret: String)]
    }

    static let subParks = [
        "Zhangjiang Science City 张江科学城", "Jinqiao Economic Zone 金桥经济技术开发区", "Lingang Special Area 临港新片区",
        "Caohejing Hi-Tech Park 漕河泾开发区", "Zizhu Hi-Tech Park 紫竹高新区",
    ]

    /// Institutes as (name, country); Chinese ones belong to a sub-park.
    static let institutes: [(String, String)] = [
        ("Fudan University 复旦大学", "CN"), ("Shanghai Jiao Tong University 上海交通大学", "CN"), ("Tongji University 同济大学", "CN"),
        ("East China Normal University 华东师范大学", "CN"), ("ShanghaiTech University 上海科技大学", "CN"),
        ("Shanghai Institute of Materia Medica 上海药物研究所", "CN"), ("Shanghai Institute of Microsystem 上海微系统所", "CN"),
        ("Shanghai Advanced Research Institute 上海高等研究院", "CN"), ("Shanghai University 上海大学", "CN"),
        ("Donghua University 东华大学", "CN"), ("East China University of Science and Technology 华东理工大学", "CN"),
        ("Shanghai Institute of Optics and Fine Mechanics 上海光机所", "CN"), ("Zhangjiang Laboratory 张江实验室", "CN"),
        ("Shanghai Institute of Ceramics 上海硅酸盐研究所", "CN"), ("Fraunhofer Institute for Production Technology", "DE"),
        ("Technical University of Munich", "DE"), ("Massachusetts Institute of Technology", "US"), ("University of Cambridge", "GB"),
        ("Tohoku University", "JP"), ("Weizmann Institute of Science", "IL"),
    ]

    static let enterprises = [
        "Zhangjiang Biopharma 张江生物制药", "Pudong Semiconductor 浦东半导体", "Lingang Auto Works 临港汽车", "Jinqiao Robotics 金桥机器人",
        "Caohejing Software 漕河泾软件", "Zizhu New Materials 紫竹新材料", "Shanghai Green Tech 上海绿色科技", "Oriental Medical Devices 东方医疗器械",
        "Huangpu Aerospace 黄浦航天", "Chongming Agritech 崇明农业科技",
    ]

    /// Per field: five subjects and four applications, each in English and Chinese; a technology
    /// title combines one of each.
    static let topics: [String: (subjects: [(String, String)], applications: [(String, String)])] = [
        "biomedicine": (
            [("Bispecific antibody", "双特异性抗体"), ("mRNA lipid nanoparticle", "mRNA脂质纳米颗粒"), ("CAR-T cell platform", "CAR-T细胞平台"),
             ("Small-molecule kinase inhibitor", "小分子激酶抑制剂"), ("Gene editing vector", "基因编辑载体")],
            [("for solid tumours", "用于实体瘤治疗"), ("for autoimmune disease", "用于自身免疫疾病"), ("for rare genetic disorders", "用于罕见遗传病"),
             ("with reduced toxicity", "低毒性")]),
        "integrated_circuits": (
            [("Chiplet interconnect", "芯粒互连"), ("Low-power SRAM cell", "低功耗SRAM单元"), ("GaN power transistor", "氮化镓功率晶体管"),
             ("Photonic integrated circuit", "光子集成电路"), ("EUV photoresist process", "极紫外光刻胶工艺")],
            [("for data-centre accelerators", "用于数据中心加速器"), ("for automotive electronics", "用于汽车电子"),
             ("for 5G radio front ends", "用于5G射频前端"), ("at 28 nm and below", "适用于28纳米及以下工艺")]),
        "artificial_intelligence": (
            [("Large language model compression", "大语言模型压缩"), ("Federated learning framework", "联邦学习框架"),
             ("Computer vision defect detection", "计算机视觉缺陷检测"), ("Reinforcement learning scheduler", "强化学习调度器"),
             ("Speech recognition engine", "语音识别引擎")],
            [("for edge devices", "面向边缘设备"), ("for smart manufacturing", "面向智能制造"), ("for medical imaging", "面向医学影像"),
             ("for financial risk control", "面向金融风控")]),
        "new_energy_vehicles": (
            [("Solid-state battery", "固态电池"), ("Silicon carbide inverter", "碳化硅逆变器"), ("Battery management system", "电池管理系统"),
             ("Hydrogen fuel cell stack", "氢燃料电池电堆"), ("Lithium battery recycling", "锂电池回收")],
            [("with fast charging", "支持快速充电"), ("for commercial vehicles", "用于商用车"), ("with thermal runaway protection", "具备热失控防护"),
             ("at low cost", "低成本方案")]),
        "advanced_materials": (
            [("Graphene composite", "石墨烯复合材料"), ("High-entropy alloy", "高熵合金"), ("Carbon fibre precursor", "碳纤维原丝"),
             ("Perovskite thin film", "钙钛矿薄膜"), ("Biodegradable polymer", "可降解聚合物")],
            [("for lightweight structures", "用于轻量化结构"), ("for flexible electronics", "用于柔性电子"),
             ("for high-temperature service", "适用于高温环境"), ("by low-cost synthesis", "低成本合成方法")]),
        "high_end_equipment": (
            [("Five-axis machining centre", "五轴加工中心"), ("Industrial robot reducer", "工业机器人减速器"), ("Laser additive manufacturing", "激光增材制造"),
             ("Precision bearing", "精密轴承"), ("Wafer inspection system", "晶圆检测系统")],
            [("with sub-micron accuracy", "亚微米精度"), ("for aerospace parts", "用于航空航天零部件"), ("with predictive maintenance", "具备预测性维护"),
             ("for semiconductor fabs", "用于半导体工厂")]),
        "information_technology": (
            [("Distributed database engine", "分布式数据库引擎"), ("Post-quantum cryptography", "后量子密码"), ("Blockchain traceability", "区块链溯源"),
             ("Industrial internet platform", "工业互联网平台"), ("Low-latency network stack", "低时延网络协议栈")],
            [("for finance", "面向金融"), ("for supply chains", "面向供应链"), ("for government services", "面向政务服务"),
             ("for the internet of things", "面向物联网")]),
        "environmental_technology": (
            [("Membrane water treatment", "膜法水处理"), ("Carbon capture sorbent", "碳捕集吸附剂"), ("VOC catalytic oxidation", "VOC催化氧化"),
             ("Sludge pyrolysis", "污泥热解"), ("Soil heavy-metal remediation", "土壤重金属修复")],
            [("for industrial parks", "用于工业园区"), ("with energy recovery", "带能量回收"), ("at municipal scale", "适用于市政规模"),
             ("for chemical plants", "用于化工厂")]),
        "medical_devices": (
            [("Wearable ECG monitor", "可穿戴心电监测仪"), ("Surgical robot arm", "手术机器人臂"), ("Biodegradable stent", "可降解支架"),
             ("Portable ultrasound probe", "便携式超声探头"), ("Continuous glucose sensor", "连续血糖传感器")],
            [("for home care", "用于居家护理"), ("for minimally invasive surgery", "用于微创手术"), ("with AI diagnosis", "结合人工智能诊断"),
             ("for primary hospitals", "用于基层医院")]),
        "aerospace": (
            [("Satellite attitude control", "卫星姿态控制"), ("Ceramic matrix composite", "陶瓷基复合材料"), ("Electric propulsion thruster", "电推进推力器"),
             ("Airborne lidar", "机载激光雷达"), ("Commercial rocket valve", "商业火箭阀门")],
            [("for small satellites", "用于小卫星"), ("for reusable launchers", "用于可重复使用运载器"), ("for drones", "用于无人机"),
             ("with radiation hardening", "抗辐射加固")]),
        "new_energy": (
            [("Perovskite solar cell", "钙钛矿太阳能电池"), ("Offshore wind turbine blade", "海上风电叶片"), ("Green hydrogen electrolyser", "绿氢电解槽"),
             ("Flow battery storage", "液流电池储能"), ("Smart microgrid controller", "智能微电网控制器")],
            [("with high efficiency", "高效率"), ("for grid-scale storage", "用于电网级储能"), ("for islands", "用于海岛"),
             ("with long service life", "长寿命")]),
        "agriculture": (
            [("Drought-tolerant rice variety", "抗旱水稻品种"), ("Precision irrigation system", "精准灌溉系统"), ("Biological pesticide", "生物农药"),
             ("Plant factory lighting", "植物工厂补光"), ("Aquaculture water monitoring", "水产养殖水质监测")],
            [("for saline land", "用于盐碱地"), ("with IoT sensors", "结合物联网传感器"), ("for organic farms", "用于有机农场"),
             ("at low water use", "节水型")]),
    ]

    static let inventorNames = ["Li Wei", "Wang Fang", "Zhang Min", "Liu Yang", "Chen Jing", "Yang Lei", "Zhao Qiang", "Huang Li",
                                "Anna Schmidt", "John Carter", "Sato Yuki", "Noa Levi"]

    /// Seeds the demo data set.
    /// - Throws: `TechBankError.conflict` if it is present already.
    public static func seed(_ pool: PostgresPool) async throws -> Summary {
        let present = try await pool.withConnection { connection in
            try await connection.query("SELECT 1 FROM techbank.organizations WHERE name = $1", [subParks[0]])
        }
        guard present.isEmpty else { throw TechBankError(.conflict, "the demo data is already present in this database") }

        let organizations = Organizations(pool: pool)
        let technologies = Technologies(pool: pool)
        // Deals need the bank (the operator) for escrow; its key is new only if it had none.
        let demands = Demands(pool: pool)
        var keys: [(String, OrganizationKind, String)] = []
        if let operatorKey = try await organizations.bootstrapOperator(adminKey: nil) {
            keys.append(("TechBank operator", .operator, operatorKey))
        }
        func key(_ organization: Organization) async throws {
            keys.append((organization.name, organization.kind, try await organizations.issueKey(for: organization.id, label: "demo").secret))
        }

        var parks: [Organization] = []
        for name in subParks { parks.append(try await organizations.create(name: name, kind: .subPark, subParkID: nil, country: "CN")) }
        try await key(parks[0])
        let committee = try await organizations.create(name: "Technology Bank Managing Committee 技术银行管理委员会", kind: .committee, subParkID: nil, country: "CN")
        try await key(committee)
        let broker = try await organizations.create(name: "Pudong Technology Brokers 浦东技术经纪", kind: .broker, subParkID: nil, country: "CN")
        try await key(broker)
        _ = try await organizations.create(name: "Global Tech Transfer Partners", kind: .broker, subParkID: nil, country: "GB")

        var owners: [Organization] = []
        for (index, (name, country)) in institutes.enumerated() {
            owners.append(try await organizations.create(name: name, kind: .institute, subParkID: country == "CN" ? parks[index % parks.count].id : nil,
                                                         country: country))
        }
        try await key(owners[0])
        var buyers: [Organization] = []
        for (index, name) in enterprises.enumerated() {
            buyers.append(try await organizations.create(name: name, kind: .enterprise, subParkID: parks[index % parks.count].id, country: "CN"))
        }
        try await key(buyers[0])

        let fields = topics.keys.sorted()
        var listed = 0
        var listedByOwner: [UUID: [UUID]] = [:]
        for index in 0..<200 {
            let field = fields[index % fields.count]
            let (subjects, applications) = topics[field]!
            let round = index / fields.count
            let subject = subjects[round % subjects.count]
            let application = applications[(round / subjects.count) % applications.count]
            let owner = owners[(index * 7) % owners.count]
            let share = [[10_000], [6_000, 4_000], [5_000, 3_000, 2_000]][index % 3]
            let inventors = share.enumerated().map { Inventor(name: inventorNames[(index + $0) % inventorNames.count], shareBP: $1) }
            let office = owner.country == "CN" ? "CN" : (owner.country == "DE" || owner.country == "GB" ? "EP" : owner.country)
            let right = IPRight(type: index % 5 == 4 ? "utility_model" : "patent", office: office,
                                number: "\(office) \(2018 + index % 7) \(index % 5 == 4 ? 2 : 1) \(1_000_000 + index * 37).\(index % 10)",
                                kindCode: index % 5 == 4 ? "U" : "B", status: index % 4 == 0 ? "pending" : "granted",
                                filedOn: PostgresDate(year: 2018 + index % 7, month: 1 + index % 12, day: 1 + index % 28), grantedOn: nil, expiresOn: nil)
            let low = Int64(500_000 + (index % 10) * 250_000) * 100
            let terms = #"{"deal_kinds": ["non_exclusive_licence", "exclusive_licence", "assignment"], "price_min": \#(low), "price_max": \#(low * 4), "currency": "CNY"}"#
            let new = NewTechnology(
                ownerID: owner.id, title: "\(subject.0) \(application.0) \(subject.1)\(application.1)",
                summary: "\(subject.0) \(application.0), developed by \(owner.name). \(subject.1)\(application.1)，可授权或转让。",
                description: "Confidential process details, data and know-how for \(subject.0.lowercased()) (demo).",
                field: field, keywords: [subject.0.lowercased(), subject.1, application.1], trl: 3 + index % 7,
                inventors: inventors, ipRights: [right], askingTerms: JSONB(terms))
            let technology = try await technologies.register(new, actor: owner.id)
            // By index modulo 9, so that every title (which repeats with the field's period of 12) is listed somewhere.
            if index % 9 < 7 {
                _ = try await technologies.transition(technology.id, .custody, actor: owner.id)
                _ = try await technologies.transition(technology.id, .listing, actor: owner.id)
                listedByOwner[owner.id, default: []].append(technology.id)
                listed += 1
            } else if index % 9 == 7 {
                _ = try await technologies.transition(technology.id, .custody, actor: owner.id)
            }
        }

        let today = PostgresDate.today()
        for index in 0..<50 {
            let field = fields[(index * 5) % fields.count]
            let (subjects, applications) = topics[field]!
            let subject = subjects[(index + 2) % subjects.count]
            let application = applications[index % applications.count]
            let buyer = buyers[index % buyers.count]
            let low = Int64(1_000_000 + (index % 8) * 500_000) * 100
            let new = NewDemand(
                ownerID: buyer.id, title: "Seeking \(subject.0.lowercased()) \(application.0) 寻求\(subject.1)技术",
                description: "\(buyer.name) seeks a licence or assignment of \(subject.0.lowercased()) technology \(application.0).",
                field: field, keywords: [subject.0.lowercased(), subject.1], trlMin: 4 + index % 5,
                budget: Budget(min: low, max: low * 3, currency: "CNY"), region: index % 3 == 0 ? "CN" : "CN-SH",
                deadline: PostgresDate(daysSince2000: today.daysSince2000 + 90 + Int32(index * 5)))
            _ = try await demands.post(new, actor: index % 4 == 3 ? broker.id : buyer.id)
        }
        let sellers = owners.filter { $0.subParkID != nil }
        let deals = try await seedDeals(pool, sellers: sellers.map { ($0.id, listedByOwner[$0.id] ?? []) }, buyers: buyers.map(\.id),
                                        committee: committee.id, today: today)
        return Summary(subParks: parks.count, institutes: owners.count, enterprises: buyers.count, technologies: 200, listed: listed,
                       demands: 50, deals: deals, keys: keys)
    }

    /// One non-exclusive licence (an assignment for approval_required) in each deal state, each
    /// on its own technology, with the buyers' money deposited and moved through the ledger.
    static func seedDeals(_ pool: PostgresPool, sellers: [(id: UUID, technologies: [UUID])], buyers: [UUID], committee: UUID,
                          today: PostgresDate) async throws -> [DealStatus: UUID] {
        let deals = Deals(pool: pool)
        let money = Money(pool: pool)
        let bank = try await pool.withConnection { try await Money.bankID($0) }
        var made: [DealStatus: UUID] = [:]
        let states: [DealStatus] = [.draft, .proposed, .approvalRequired, .approved, .signed, .active, .completed, .cancelled, .disputed, .terminated]
        for (index, state) in states.enumerated() {
            let seller = sellers[index % sellers.count]
            let buyer = buyers[index % buyers.count]
            let technology = seller.technologies[index / sellers.count]
            let terms = DealTerms(
                kind: state == .approvalRequired ? .assignment : .nonExclusiveLicence, fieldOfUse: "All industrial applications 全部工业应用",
                territories: ["CN"], startsOn: "2026-01-01", endsOn: "2030-12-31", currency: "CNY",
                upfront: 50_000_000, milestones: [
                    MilestoneTerms(name: "Technology package delivered 技术资料交付", amount: 30_000_000, dueOn: "2027-03-31", evidenceRequired: true),
                    MilestoneTerms(name: "Pilot production 中试生产", amount: 20_000_000, dueOn: "2027-12-31", evidenceRequired: false),
                ],
                royaltyBP: state == .completed ? 0 : 300, minimumAnnualRoyalty: 0, sublicensingAllowed: false, brokerFeeBP: 0,
                subParkFeeBP: 100, contractCategory: .licence)
            // Above the threshold, so that the committee approves it.
            var approved = terms
            approved.upfront = 150_000_000
            let id = try await deals.create(technologyID: technology, sellerID: seller.id, buyerID: buyer, brokerID: nil, matchID: nil,
                                            terms: state == .approved ? approved : terms, actor: seller.id).id
            made[state] = id
            if state == .draft { continue }
            if state == .cancelled {
                _ = try await deals.cancel(id, actor: buyer, byCommittee: false)
                continue
            }
            _ = try await deals.propose(id, actor: seller.id)
            if state == .proposed || state == .approvalRequired { continue }
            if state == .approved {
                _ = try await deals.decide(id, approve: true, reason: "Within the park's strategic fields 符合园区重点领域", committee: committee)
                continue
            }
            _ = try await deals.sign(id, party: seller.id)
            _ = try await deals.sign(id, party: buyer)
            if state == .signed { continue }
            _ = try await money.move(.deposit, organizationID: buyer, amount: 200_000_000, currency: "CNY", externalRef: "DEMO-\(id.uuidString.prefix(8))",
                                     actor: bank)
            _ = try await deals.fund(id, actor: buyer)
            switch state {
            case .completed:
                _ = try await deals.release(id, milestone: 1, evidence: "Technology package accepted 技术资料验收合格", actor: buyer)
                _ = try await deals.release(id, milestone: 2, evidence: nil, actor: buyer)
            case .disputed:
                _ = try await deals.dispute(id, milestone: 1, reason: "The delivered package lacks the process parameters 交付资料缺少工艺参数", actor: buyer)
            case .terminated:
                _ = try await deals.release(id, milestone: 1, evidence: "Technology package accepted 技术资料验收合格", actor: buyer)
                _ = try await deals.cancel(id, actor: committee, byCommittee: true)
            default:
                break
            }
        }
        return made
    }
}
